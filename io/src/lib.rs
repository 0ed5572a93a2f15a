//! camgate io
