//! Speex decoder over the system libspeex (Debian `libspeex-dev`), declared by hand (nine functions, one struct)
//! to avoid bindgen. Layouts follow `<speex/speex_bits.h>` of libspeex 1.2.

use std::ffi::{c_char, c_int, c_void};

use crate::audio::AudioError;

#[repr(C)]
struct SpeexBits {
    chars: *mut c_char,
    nb_bits: c_int,
    char_ptr: c_int,
    bit_ptr: c_int,
    owner: c_int,
    overflow: c_int,
    buf_size: c_int,
    reserved1: c_int,
    reserved2: *mut c_void,
}

const SPEEX_SET_ENH: c_int = 0;
const SPEEX_GET_FRAME_SIZE: c_int = 3;

#[link(name = "speex")]
extern "C" {
    fn speex_lib_get_mode(mode: c_int) -> *const c_void;
    fn speex_decoder_init(mode: *const c_void) -> *mut c_void;
    fn speex_decoder_destroy(state: *mut c_void);
    fn speex_decoder_ctl(state: *mut c_void, request: c_int, ptr: *mut c_void) -> c_int;
    fn speex_decode_int(state: *mut c_void, bits: *mut SpeexBits, out: *mut i16) -> c_int;
    fn speex_bits_init(bits: *mut SpeexBits);
    fn speex_bits_destroy(bits: *mut SpeexBits);
    fn speex_bits_read_from(bits: *mut SpeexBits, bytes: *const c_char, len: c_int);
    fn speex_bits_remaining(bits: *mut SpeexBits) -> c_int;
}

/// At most this many frames are decoded from one RTP payload (RFC 5574 lets a packet carry several).
const MAX_FRAMES_PER_PACKET: usize = 16;

pub(crate) struct SpeexDecoder {
    state: *mut c_void,
    bits: Box<SpeexBits>,
    frame_size: usize,
    frame: Vec<i16>,
}

// SAFETY: the state and bit buffer are heap memory owned by this value only.
unsafe impl Send for SpeexDecoder {}

impl SpeexDecoder {
    /// `rate` 8000 → narrowband, 16000 → wideband, 32000 → ultra-wideband.
    pub(crate) fn new(rate: u32) -> Result<SpeexDecoder, AudioError> {
        let mode_id = match rate {
            8000 => 0,
            16000 => 1,
            32000 => 2,
            _ => {
                return Err(AudioError::Unsupported(format!(
                    "Speex at {rate} Hz is not supported; Speex runs at 8000, 16000 or 32000 Hz"
                )))
            }
        };
        // SAFETY: mode ids 0..=2 are valid; the returned pointers are checked before use.
        unsafe {
            let mode = speex_lib_get_mode(mode_id);
            if mode.is_null() {
                return Err(AudioError::Codec("speex_lib_get_mode failed".into()));
            }
            let state = speex_decoder_init(mode);
            if state.is_null() {
                return Err(AudioError::Codec("speex_decoder_init failed".into()));
            }
            let mut enh: c_int = 1;
            speex_decoder_ctl(state, SPEEX_SET_ENH, (&mut enh as *mut c_int).cast());
            let mut frame_size: c_int = 0;
            speex_decoder_ctl(
                state,
                SPEEX_GET_FRAME_SIZE,
                (&mut frame_size as *mut c_int).cast(),
            );
            let mut bits = Box::new(std::mem::zeroed::<SpeexBits>());
            speex_bits_init(&mut *bits);
            let frame_size = frame_size.clamp(0, 2048) as usize;
            let dec = SpeexDecoder {
                state,
                bits,
                frame_size,
                frame: vec![0; frame_size],
            };
            if frame_size == 0 {
                return Err(AudioError::Codec(
                    "speex decoder reports frame size 0".into(),
                ));
            }
            Ok(dec)
        }
    }

    pub(crate) fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Decodes every frame of one RTP payload; calls `frame` with each frame's samples (f32, mono).
    /// Returns false if the payload was corrupt (frames decoded before the corruption are still delivered).
    pub(crate) fn decode(&mut self, payload: &[u8], frame: &mut dyn FnMut(&[f32])) -> bool {
        if payload.is_empty() || payload.len() > 4096 {
            return false;
        }
        let mut f32s = vec![0f32; self.frame_size];
        // SAFETY: bits was initialised in new(); payload is a valid slice of the given length; frame has
        // frame_size samples, which is what speex_decode_int writes.
        unsafe {
            speex_bits_read_from(
                &mut *self.bits,
                payload.as_ptr().cast(),
                payload.len() as c_int,
            );
            for n in 0..MAX_FRAMES_PER_PACKET {
                // A frame needs at least the wideband flag and mode (5 bits); less is padding.
                if speex_bits_remaining(&mut *self.bits) < 5 {
                    return n > 0;
                }
                let rc = speex_decode_int(self.state, &mut *self.bits, self.frame.as_mut_ptr());
                if rc == -1 {
                    return n > 0; // terminator
                }
                if rc != 0 || speex_bits_remaining(&mut *self.bits) < 0 {
                    return false;
                }
                for (d, &s) in f32s.iter_mut().zip(&self.frame) {
                    *d = f32::from(s) / 32768.0;
                }
                frame(&f32s);
            }
        }
        true
    }
}

impl Drop for SpeexDecoder {
    fn drop(&mut self) {
        // SAFETY: both were initialised in new() and are released once.
        unsafe {
            speex_bits_destroy(&mut *self.bits);
            speex_decoder_destroy(self.state);
        }
    }
}
