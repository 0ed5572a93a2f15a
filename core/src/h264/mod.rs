//! H.264 over RTP (RFC 6184, packetization-mode 1): the relay used on the live path, plus a full
//! depacketizer and packetizer, parameter-set handling and NAL helpers.

pub mod depacketize;
pub mod nal;
pub mod packetize;
pub mod params;
pub mod relay;
pub mod slice;

pub use depacketize::{AccessUnit, Depacketizer};
pub use packetize::Packetizer;
pub use params::ParameterSets;
pub use relay::H264Relay;
pub use slice::SliceType;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bframe_tests;
