//! Thin safe wrappers over the C codec libraries: libopus (through `opusic-sys`, linking the system
//! library, Debian `libopus-dev`), libspeex and libspandsp's G.722 (hand-written declarations, Debian
//! `libspeex-dev`, `libspandsp-dev`).

// The only place in core that calls C: every `unsafe` block here says why it is sound.
#![allow(unsafe_code)]

pub(crate) mod g722;
pub mod opus;
pub(crate) mod speex;
