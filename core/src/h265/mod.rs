//! H.265/HEVC over RTP (RFC 7798, without DONL): the relay used on the live path, the VPS/SPS/PPS
//! store and what the SPS says (profile, tier, level, size, reordering).

pub mod nal;
pub mod params;
pub mod relay;
pub mod sps;

pub use params::ParameterSets;
pub use relay::H265Relay;
pub use sps::SpsInfo;

#[cfg(test)]
mod tests;
