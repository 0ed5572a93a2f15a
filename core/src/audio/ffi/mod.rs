//! Thin safe wrappers over the two C codec libraries: libopus (through `opusic-sys`, linking the system
//! library, Debian `libopus-dev`) and libspeex (hand-written declarations, Debian `libspeex-dev`).

pub mod opus;
pub(crate) mod speex;
