//! libopus encoder (what the transcoder emits) and decoder (for the tests).

use std::ffi::{c_int, CStr};

use opusic_sys as sys;

use crate::audio::AudioError;

fn error_text(code: c_int) -> String {
    // SAFETY: opus_strerror returns a pointer to a static NUL-terminated string for any code.
    let text = unsafe { CStr::from_ptr(sys::opus_strerror(code)) };
    text.to_string_lossy().into_owned()
}

/// A libopus encoder at 48 kHz.
pub(crate) struct OpusEncoder {
    st: *mut sys::OpusEncoder,
    channels: usize,
}

// SAFETY: the encoder state is plain memory owned by this value; libopus keeps no thread-local state.
unsafe impl Send for OpusEncoder {}

impl OpusEncoder {
    pub(crate) fn new(
        channels: u16,
        bitrate: i32,
        complexity: i32,
    ) -> Result<OpusEncoder, AudioError> {
        let mut err: c_int = 0;
        // SAFETY: valid arguments; the returned pointer is checked and owned by the wrapper.
        let st = unsafe {
            sys::opus_encoder_create(
                48000,
                c_int::from(channels),
                sys::OPUS_APPLICATION_AUDIO,
                &mut err,
            )
        };
        if st.is_null() || err != sys::OPUS_OK {
            return Err(AudioError::Codec(format!(
                "opus_encoder_create: {}",
                error_text(err)
            )));
        }
        let enc = OpusEncoder {
            st,
            channels: usize::from(channels),
        };
        for (request, value) in [
            (sys::OPUS_SET_BITRATE_REQUEST, bitrate),
            (sys::OPUS_SET_COMPLEXITY_REQUEST, complexity),
            (sys::OPUS_SET_VBR_REQUEST, 1),
        ] {
            // SAFETY: these requests take one opus_int32 argument.
            let rc = unsafe { sys::opus_encoder_ctl(enc.st, request, value) };
            if rc != sys::OPUS_OK {
                return Err(AudioError::Codec(format!(
                    "opus_encoder_ctl({request}): {}",
                    error_text(rc)
                )));
            }
        }
        Ok(enc)
    }

    /// Encodes one frame of interleaved samples (`pcm.len() / channels` must be a valid Opus frame size).
    pub(crate) fn encode(&mut self, pcm: &[f32], out: &mut Vec<u8>) -> Result<(), AudioError> {
        out.clear();
        out.resize(1500, 0);
        let frame = (pcm.len() / self.channels) as c_int;
        // SAFETY: pcm holds frame × channels samples; out has room for the declared 1500 bytes.
        let n = unsafe {
            sys::opus_encode_float(
                self.st,
                pcm.as_ptr(),
                frame,
                out.as_mut_ptr(),
                out.len() as i32,
            )
        };
        if n < 0 {
            out.clear();
            return Err(AudioError::Codec(format!(
                "opus_encode_float: {}",
                error_text(n)
            )));
        }
        out.truncate(n as usize);
        Ok(())
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_encoder_create and is destroyed once.
        unsafe { sys::opus_encoder_destroy(self.st) }
    }
}

/// A libopus decoder at 48 kHz: turns [`crate::audio::OpusPacket`] payloads back into interleaved f32 samples.
/// Used by the tests to check what the transcoder produced; not needed on the relay path.
pub struct OpusDecoder {
    st: *mut sys::OpusDecoder,
    channels: usize,
}

// SAFETY: as for the encoder.
unsafe impl Send for OpusDecoder {}

impl OpusDecoder {
    /// A decoder for `channels` (1 or 2) at 48 kHz; fails if libopus refuses the channel count.
    pub fn new(channels: u16) -> Result<OpusDecoder, AudioError> {
        let mut err: c_int = 0;
        // SAFETY: valid arguments; the pointer is checked.
        let st = unsafe { sys::opus_decoder_create(48000, c_int::from(channels), &mut err) };
        if st.is_null() || err != sys::OPUS_OK {
            return Err(AudioError::Codec(format!(
                "opus_decoder_create: {}",
                error_text(err)
            )));
        }
        Ok(OpusDecoder {
            st,
            channels: usize::from(channels),
        })
    }

    /// Decodes one packet, appending interleaved samples to `out`; returns samples per channel.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<usize, AudioError> {
        const MAX_FRAME: usize = 5760; // 120 ms at 48 kHz
        let start = out.len();
        out.resize(start + MAX_FRAME * self.channels, 0.0);
        // SAFETY: out has room for MAX_FRAME samples per channel; packet is a valid slice.
        let n = unsafe {
            sys::opus_decode_float(
                self.st,
                packet.as_ptr(),
                packet.len() as i32,
                out[start..].as_mut_ptr(),
                MAX_FRAME as c_int,
                0,
            )
        };
        if n < 0 {
            out.truncate(start);
            return Err(AudioError::Codec(format!(
                "opus_decode_float: {}",
                error_text(n)
            )));
        }
        out.truncate(start + n as usize * self.channels);
        Ok(n as usize)
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_decoder_create and is destroyed once.
        unsafe { sys::opus_decoder_destroy(self.st) }
    }
}

/// Samples per channel (at 48 kHz) in an Opus packet, or `None` if the packet is malformed.
pub(crate) fn packet_samples(packet: &[u8]) -> Option<u32> {
    if packet.is_empty() {
        return None;
    }
    // SAFETY: reads only within the given slice.
    let n = unsafe { sys::opus_packet_get_nb_samples(packet.as_ptr(), packet.len() as i32, 48000) };
    (n > 0).then_some(n as u32)
}
