//! camgate's sans-IO core: every protocol state machine of the gateway, with no sockets, threads,
//! locks, clock reads or OS randomness. Time is passed in as `Instant` and randomness as a seed;
//! bytes go in through `handle_*` and come out through `poll_*`, so the whole relay can be driven
//! deterministically in tests (see docs/ARCHITECTURE.md).

// What is `pub` here is the API the other crates use, and each item of it says what it is for;
// the rest is `pub(crate)`.
#![warn(unreachable_pub)]
#![warn(missing_docs)]

pub mod audio;
pub mod audio_relay;
pub mod bandwidth;
pub mod camera_lag;
pub mod demo;
pub mod gateway;
pub mod gop;
pub mod h264;
pub mod h265;
pub mod host_rules;
pub mod ice_tcp;
pub mod ids;
pub mod lip_sync;
pub mod media;
pub mod mirror;
mod nal_relay;
pub mod placement;
mod rng;
pub mod rtp;
pub mod rtp_reorder;
pub mod rtsp;
pub mod signaling;
pub mod stun;
pub mod video_relay;
pub mod viewer;
pub mod viewer_token;
pub mod vp8;

/// The WebRTC stack, re-exported so the I/O layer speaks its `Transmit` type.
pub use str0m;
