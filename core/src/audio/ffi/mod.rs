//! Thin safe wrappers over the two C codec libraries: libopus (through `opusic-sys`, linking the system
//! library, Debian `libopus-dev`) and libspeex (hand-written declarations, Debian `libspeex-dev`).

// The only place in core that calls C: every `unsafe` block here says why it is sound.
#![allow(unsafe_code)]

pub mod opus;
pub(crate) mod speex;
