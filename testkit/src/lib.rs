//! Test helpers shared by camgate's tests, benchmarks and fuzz targets (never by the product):
//!
//! - [`rng::Rng`]: the one deterministic pseudo-random generator of tests, harnesses and the
//!   bench camera;
//! - [`hex`], [`nal`] and [`capture`]: test inputs written as hex, NAL units of a given type
//!   and size, recorded RTP captures;
//! - [`camera::FakeCamera`]: a scripted, in-memory RTSP camera (TCP-interleaved) for tests
//!   that drive the sans-IO gateway;
//! - [`fuzz`]: the fuzz harnesses, run by the cargo-fuzz binaries in `fuzz/` and replayed over
//!   the corpora by `core/tests/fuzz_regressions.rs` and (feature `web`)
//!   `server/tests/fuzz_regressions.rs`.

pub mod camera;
pub mod capture;
pub mod fuzz;
pub mod hex;
pub mod nal;
pub mod rng;

pub use rng::Rng;
