//! camgate's server side as a library: configuration, the web side (HTTP, WebSocket
//! signaling, REST, WHEP, TLS), access control and the built-in demo camera.
//!
//! The `camgate` binary (`main.rs`) wires these to the event loop; the fuzz harnesses
//! (`testkit/src/fuzz/web.rs`) feed the web side arbitrary bytes through the same API.

pub mod access;
pub mod auth_throttle;
pub mod config;
pub mod demo;
pub mod dtls;
pub mod ice;
pub mod tls;
pub mod web;
