//! camgate's server side as a library: configuration, the web side (HTTP, WebSocket
//! signaling, REST, WHEP, TLS), access control and the built-in demo camera.
//!
//! The `camgate` binary (`main.rs`) wires these to the event loop; the fuzz harnesses
//! (`fuzz/src/server.rs`) feed the web side arbitrary bytes through the same API.

pub mod access;
pub mod config;
pub mod demo;
pub mod tls;
pub mod web;
