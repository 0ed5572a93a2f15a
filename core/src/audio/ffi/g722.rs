//! G.722 decoder over the system libspandsp (Debian `libspandsp-dev`, 0.0.6 in Debian 12), declared by hand
//! (three functions, an opaque state) to avoid bindgen. spandsp's G.722 is bit exact with the ITU tests.

use std::ffi::{c_int, c_void};

use crate::audio::AudioError;

#[link(name = "spandsp")]
extern "C" {
    fn g722_decode_init(s: *mut c_void, rate: c_int, options: c_int) -> *mut c_void;
    fn g722_decode_free(s: *mut c_void) -> c_int;
    fn g722_decode(s: *mut c_void, amp: *mut i16, data: *const u8, len: c_int) -> c_int;
}

/// G.722 as RTP carries it (RFC 3551): 64 kbit/s, one byte per two 16 kHz samples.
const BIT_RATE: c_int = 64000;
/// A payload larger than this is not G.722 from a camera (1 s of audio is 8000 bytes).
const MAX_PAYLOAD: usize = 16000;

pub(crate) struct G722Decoder {
    state: *mut c_void,
    pcm: Vec<i16>,
}

// SAFETY: the state is heap memory owned by this value only.
unsafe impl Send for G722Decoder {}

impl G722Decoder {
    pub(crate) fn new() -> Result<G722Decoder, AudioError> {
        // SAFETY: a null state asks spandsp to allocate one; the result is checked.
        let state = unsafe { g722_decode_init(std::ptr::null_mut(), BIT_RATE, 0) };
        if state.is_null() {
            return Err(AudioError::Codec("g722_decode_init failed".into()));
        }
        Ok(G722Decoder {
            state,
            pcm: Vec::new(),
        })
    }

    /// Decodes one RTP payload into 16 kHz mono samples appended to `out` (two per byte). False if the
    /// payload is empty or too large.
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> bool {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return false;
        }
        self.pcm.clear();
        self.pcm.resize(payload.len() * 2, 0);
        // SAFETY: the state was initialised in new(); at 64 kbit/s spandsp writes two samples per input
        // byte, which is the room `pcm` has.
        let n = unsafe {
            g722_decode(
                self.state,
                self.pcm.as_mut_ptr(),
                payload.as_ptr(),
                payload.len() as c_int,
            )
        };
        let n = (n.max(0) as usize).min(self.pcm.len());
        out.extend(self.pcm[..n].iter().map(|&s| f32::from(s) / 32768.0));
        n > 0
    }
}

impl Drop for G722Decoder {
    fn drop(&mut self) {
        // SAFETY: allocated by g722_decode_init in new() and released once.
        unsafe {
            g722_decode_free(self.state);
        }
    }
}
