//! camgate's I/O layer: a minimal mio event loop that drives the sans-IO [`Gateway`] of
//! `camgate-core`. It owns every socket (web listeners and clients, camera connections, the
//! shared WebRTC UDP sockets) and the clock; the core owns every decision.
//!
//! The web side (HTTP, WebSocket framing) is the server crate's business: it plugs in through
//! the [`WebApp`] trait and sees only bytes per connection.
//!
//! [`Gateway`]: camgate_core::gateway::Gateway

pub mod camera_tls;
pub mod camera_udp;
pub mod event_loop;
pub mod lanes;
pub mod socket_buffers;
pub mod tcp;
pub mod udp;
pub mod udp_source;
pub mod workers;

pub use event_loop::{ConnId, EventLoop, EventLoopConfig, ListenerKind, NoWeb, WebApp, WebIo};
pub use workers::WorkerLink;
