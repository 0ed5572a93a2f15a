//! Empty: see tests/retina.rs.
