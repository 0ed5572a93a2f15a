//! AAC: the configuration records (AudioSpecificConfig, LATM StreamMuxConfig), the two RTP payload formats
//! (RFC 3640 mpeg4-generic, RFC 6416 MP4A-LATM with `cpresent=0`) and the AAC-LC decoder (symphonia).
//!
//! AAC-LC with one or two channels and 1024-sample frames is decoded, and so is the AAC-LC core of HE-AAC and
//! HE-AAC v2 (the SBR and PS data ride in fill elements that the decoder skips): audible, at the core's rate, band-
//! limited, and said so in the stream info. Anything else is refused when the [`super::Transcoder`] is built, with a
//! message naming the profile, so the camera is reported instead of producing silence.
//!
//! One concern per file: `config` (the configuration records), `rtp` (the payload formats), the
//! decoder here.

mod config;
mod rtp;

pub(crate) use config::*;
pub(crate) use rtp::*;

use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration, Timestamp};

use super::bits::BitWriter;
use super::AudioError;

/// AAC-LC decoder: symphonia's, fed a normalized AudioSpecificConfig. Garbage access units are reported as
/// errors; a panic inside the decoder is contained and the decoder rebuilt.
pub(crate) struct AacDecoder {
    dec: symphonia_codec_aac::AacDecoder,
    params: AudioCodecParameters,
}

impl AacDecoder {
    pub(crate) fn new(config: AacConfig) -> Result<AacDecoder, AudioError> {
        let mut w = BitWriter::default();
        w.write(5, 2); // AAC-LC
        match SAMPLE_RATES.iter().position(|&r| r == config.sample_rate) {
            Some(index) => w.write(4, index as u32),
            None => {
                w.write(4, 15);
                w.write(24, config.sample_rate);
            }
        }
        w.write(4, u32::from(config.channels));
        w.write(3, 0); // 1024-sample frames, no core coder, no extension
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(w.finish().into_boxed_slice());
        let dec =
            symphonia_codec_aac::AacDecoder::try_new(&params, &AudioDecoderOptions::default())
                .map_err(|e| AudioError::Codec(format!("AAC decoder refused the config: {e}")))?;
        Ok(AacDecoder { dec, params })
    }

    /// Decodes one access unit into interleaved f32 samples (replacing `out`'s contents).
    pub(crate) fn decode(&mut self, au: &[u8], out: &mut Vec<f32>) -> bool {
        let packet = PacketRef::new(
            0,
            Timestamp::new(0),
            Duration::new(u64::from(AAC_FRAME)),
            au,
        );
        let dec = &mut self.dec;
        let ok = catch_unwind(AssertUnwindSafe(|| match dec.decode_ref(&packet) {
            Ok(buf) => {
                buf.copy_to_vec_interleaved(out);
                true
            }
            Err(_) => false,
        }));
        if !matches!(ok, Ok(true)) {
            // Rebuild after any failure: symphonia keeps the channel elements a bad frame announced (a CPE in a
            // mono stream, say), which would make every later good frame fail too.
            if let Ok(dec) = symphonia_codec_aac::AacDecoder::try_new(
                &self.params,
                &AudioDecoderOptions::default(),
            ) {
                self.dec = dec;
            }
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::bits::BitReader;

    fn hex(s: &str) -> Vec<u8> {
        super::super::input::hex_decode(s).unwrap()
    }

    fn lc(sample_rate: u32, channels: u16) -> AacConfig {
        AacConfig {
            sample_rate,
            channels,
            he: None,
        }
    }

    fn he(sample_rate: u32, channels: u16, output_rate: u32, ps: bool) -> AacConfig {
        AacConfig {
            sample_rate,
            channels,
            he: Some(HeAac { output_rate, ps }),
        }
    }

    /// (who wrote it, mpeg4-generic `config=`, MP4A-LATM `config=` (GStreamer's rtpmp4apay around the same
    /// AudioSpecificConfig), what camgate decodes, how SBR is signalled).
    fn real_configs() -> Vec<(&'static str, &'static str, &'static str, AacConfig, Sbr)> {
        let none = Sbr::NotSignalled;
        let hier = |output_rate| Sbr::Present {
            output_rate,
            hierarchical: true,
        };
        let compat = |output_rate| Sbr::Present {
            output_rate,
            hierarchical: false,
        };
        vec![
            // GStreamer 1.22 avenc_aac (libavcodec): AAC-LC + sync extension 0x2b7, AOT 5, sbrPresentFlag 0.
            (
                "avenc_aac 16k mono",
                "140856e500",
                "40002810adca00",
                lc(16000, 1),
                Sbr::Absent,
            ),
            (
                "avenc_aac 44.1k stereo",
                "121056e500",
                "40002420adca00",
                lc(44100, 2),
                Sbr::Absent,
            ),
            (
                "avenc_aac 48k stereo",
                "119056e500",
                "40002320adca00",
                lc(48000, 2),
                Sbr::Absent,
            ),
            (
                "avenc_aac 8k mono",
                "158856e500",
                "40002b10adca00",
                lc(8000, 1),
                Sbr::Absent,
            ),
            // GStreamer 1.22 voaacenc: plain AAC-LC, and rtpmp4apay's config stops right after it.
            ("voaacenc 16k mono", "1408", "40002810", lc(16000, 1), none),
            (
                "voaacenc 44.1k stereo",
                "1210",
                "40002420",
                lc(44100, 2),
                none,
            ),
            (
                "voaacenc 48k stereo",
                "1190",
                "40002320",
                lc(48000, 2),
                none,
            ),
            ("voaacenc 8k mono", "1588", "40002b10", lc(8000, 1), none),
            // fdk-aac (fdkaacenc is not in Debian: fdk-aac is non-free). GStreamer's fdkaacenc asks fdk-aac for
            // explicit hierarchical signalling on raw output (gst-plugins-bad ext/fdkaac/gstfdkaacenc.c,
            // AACENC_SIGNALING_MODE 2), so its AAC-LC configs are plain and its HE-AAC ones start with AOT 5 /
            // AOT 29. These are the configs fdk-aac writes (as listed by its users, e.g. Android FdkAAC wrappers'
            // "1188" 48k LC, "2B8A0800" 44.1k HE-AAC; "2b920800" HE-AAC and "eb098800" HE-AAC v2 in the RTSP
            // libraries' tests); the LATM forms are what rtpmp4apay makes of them (checked with GStreamer 1.22).
            (
                "fdk-aac LC 48k mono",
                "1188",
                "40002310",
                lc(48000, 1),
                none,
            ),
            (
                "fdk-aac LC 44.1k mono",
                "1208",
                "40002410",
                lc(44100, 1),
                none,
            ),
            (
                "fdk-aac HE-AAC 44.1k stereo (AOT 5)",
                "2b920800",
                "400057241000",
                he(22050, 2, 44100, false),
                hier(44100),
            ),
            (
                "fdk-aac HE-AAC 44.1k mono (AOT 5)",
                "2b8a0800",
                "400057141000",
                he(22050, 1, 44100, false),
                hier(44100),
            ),
            (
                "fdk-aac HE-AAC v2 48k (AOT 29)",
                "eb098800",
                "4001d6131000",
                he(24000, 1, 48000, true),
                hier(48000),
            ),
            // Backward-compatible signalling with SBR present (and PS, sync extension 0x548 nested in it).
            (
                "HE-AAC 48k->96k via 0x2b7",
                "119056e580",
                "40002320adcb00",
                he(48000, 2, 96000, false),
                compat(96000),
            ),
            (
                "HE-AAC v2 via 0x2b7 + 0x548",
                "130856e59d4880",
                "40002610adcb3a9100",
                he(24000, 1, 48000, true),
                compat(48000),
            ),
        ]
    }

    #[test]
    fn parses_real_configs_in_both_payload_formats() {
        for (who, generic, latm, want, sbr) in real_configs() {
            let asc = AudioSpecificConfig::parse(&mut BitReader::new(&hex(generic))).unwrap();
            assert_eq!(asc.sbr, sbr, "{who}: {asc:?}");
            assert_eq!(
                parse_generic_config(&hex(generic)),
                Ok(want),
                "{who} mpeg4-generic"
            );
            assert_eq!(
                parse_stream_mux_config(&hex(latm)),
                Ok((want, 0)),
                "{who} LATM"
            );
        }
        // What the stream info says about HE-AAC.
        let note = parse_generic_config(&hex("eb098800"))
            .unwrap()
            .note()
            .unwrap();
        assert_eq!(
            note,
            "HE-AAC v2 (SBR+PS), decoding its AAC-LC core at 24000 Hz mono"
        );
        let note = parse_generic_config(&hex("2b920800"))
            .unwrap()
            .note()
            .unwrap();
        assert_eq!(
            note,
            "HE-AAC (SBR), decoding its AAC-LC core at 22050 Hz stereo"
        );
        assert_eq!(
            parse_generic_config(&hex("140856e500")).unwrap().note(),
            None
        );
    }

    /// A StreamMuxConfig of audioMuxVersion 0 around `asc_bits` (written by `asc`), followed by `tail`.
    fn smc_v0(asc: impl Fn(&mut BitWriter), tail: impl Fn(&mut BitWriter)) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.write(1, 0); // audioMuxVersion
        w.write(1, 1); // allStreamsSameTimeFraming
        w.write(6, 0); // numSubFrames
        w.write(4, 0); // numProgram
        w.write(3, 0); // numLayer
        asc(&mut w);
        tail(&mut w);
        w.finish()
    }

    fn avenc_asc(w: &mut BitWriter) {
        w.write(16, 0x1408); // AAC-LC 16 kHz mono, GASpecificConfig 000
        w.write(11, 0x2b7);
        w.write(5, 5);
        w.write(1, 0); // sbrPresentFlag
    }

    #[test]
    fn latm_reads_frame_length_type_right_after_the_sync_extension() {
        // The full tail: frameLengthType 0, latmBufferFullness, otherDataPresent 0, crcCheckPresent 0.
        let full = smc_v0(avenc_asc, |w| {
            w.write(3, 0);
            w.write(8, 0xFF);
            w.write(2, 0);
        });
        assert_eq!(parse_stream_mux_config(&full), Ok((lc(16000, 1), 0)));
        // frameLengthType 1 right after the extension is seen as 1: the extension's bits were all consumed.
        let fixed = smc_v0(avenc_asc, |w| {
            w.write(3, 1);
            w.write(9, 100);
        });
        let e = parse_stream_mux_config(&fixed).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
        // SBR present with PS: both extensions consumed, frameLengthType 0 follows.
        let he_ps = smc_v0(
            |w| {
                w.write(16, 0x1308); // AAC-LC 24 kHz mono
                w.write(11, 0x2b7);
                w.write(5, 5);
                w.write(1, 1);
                w.write(4, 3); // 48 kHz
                w.write(11, 0x548);
                w.write(1, 1);
            },
            |w| {
                w.write(3, 0);
                w.write(8, 0xFF);
                w.write(2, 0);
            },
        );
        assert_eq!(
            parse_stream_mux_config(&he_ps),
            Ok((he(24000, 1, 48000, true), 0))
        );
        // An LC config with no extension, followed by frameLengthType 1: nothing is taken for an extension.
        let plain = smc_v0(|w| w.write(16, 0x1408), |w| w.write(12, 1 << 9));
        let e = parse_stream_mux_config(&plain).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
    }

    #[test]
    fn latm_version_1_bounds_the_config_by_its_length() {
        let smc = |asc_len: u32, asc: &[u8], frame_length_type: u32| {
            let mut w = BitWriter::default();
            w.write(1, 1); // audioMuxVersion
            w.write(1, 0); // audioMuxVersionA
            w.write(2, 0); // taraBufferFullness: LatmGetValue of one byte
            w.write(8, 0xFF);
            w.write(1, 1);
            w.write(6, 0);
            w.write(4, 0);
            w.write(3, 0);
            w.write(2, 0); // ascLen: LatmGetValue of one byte
            w.write(8, asc_len);
            for &b in asc {
                w.write(8, u32::from(b));
            }
            w.write(3, frame_length_type);
            w.write(8, 0xFF);
            w.write(2, 0);
            w.finish()
        };
        let avenc = hex("140856e500");
        // ascLen covers the sync extension and avenc_aac's padding bits: those are skipped, not read as fields.
        assert_eq!(
            parse_stream_mux_config(&smc(40, &avenc, 0)),
            Ok((lc(16000, 1), 0))
        );
        let e = parse_stream_mux_config(&smc(40, &avenc, 1)).unwrap_err();
        assert!(e.to_string().contains("frameLengthType 1"), "{e}");
        // HE-AAC v2 by backward-compatible signalling, inside its length.
        let v2 = hex("130856e59d4880");
        assert_eq!(
            parse_stream_mux_config(&smc(56, &v2, 0)),
            Ok((he(24000, 1, 48000, true), 0))
        );
        // A length that ends before the extension: the extension is not read past it.
        let mut w = BitWriter::default();
        for (n, v) in [
            (1, 1),
            (1, 0),
            (2, 0),
            (8, 0xFF),
            (1, 1),
            (6, 0),
            (4, 0),
            (3, 0),
            (2, 0),
            (8, 16),
        ] {
            w.write(n, v);
        }
        w.write(16, 0x1308);
        w.write(3, 0); // frameLengthType, where a config 16 bits long ends
        w.write(8, 0xFF);
        assert_eq!(parse_stream_mux_config(&w.finish()), Ok((lc(24000, 1), 0)));
    }

    #[test]
    fn parses_every_field_of_the_config() {
        // Explicit 24-bit sampling frequency (index 15).
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 15);
        w.write(24, 16000);
        w.write(4, 2);
        w.write(3, 0);
        assert_eq!(parse_generic_config(&w.finish()), Ok(lc(16000, 2)));
        // Explicit HE-AAC whose extension rate is explicit too.
        let mut w = BitWriter::default();
        w.write(5, 5);
        w.write(4, 6); // 24 kHz core
        w.write(4, 1);
        w.write(4, 15);
        w.write(24, 48000);
        w.write(5, 2);
        w.write(3, 0);
        assert_eq!(
            parse_generic_config(&w.finish()),
            Ok(he(24000, 1, 48000, false))
        );
        // Escaped object type 31: 32 + 10 = 42 (USAC), named.
        let e = parse_generic_config(&hex("f94640")).unwrap_err();
        assert!(
            e.to_string().contains("xHE-AAC") && e.to_string().contains("42"),
            "{e}"
        );
        // GASpecificConfig with dependsOnCoreCoder and extensionFlag: its bits are skipped, then a sync extension.
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 8);
        w.write(4, 1);
        w.write(1, 0); // frameLengthFlag
        w.write(1, 1); // dependsOnCoreCoder
        w.write(14, 0x2b7); // coreCoderDelay, a look-alike sync word that must not be taken for one
        w.write(1, 1); // extensionFlag
        w.write(1, 0); // extensionFlag3
        w.write(11, 0x2b7);
        w.write(5, 5);
        w.write(1, 1);
        w.write(4, 5); // 32 kHz
        let bytes = w.finish();
        let asc = AudioSpecificConfig::parse(&mut BitReader::new(&bytes)).unwrap();
        assert!(asc.depends_on_core_coder && asc.extension_flag, "{asc:?}");
        assert_eq!(asc.decodable(), Ok(he(16000, 1, 32000, false)));
        // channelConfiguration 0: a program config element (one front CPE = 2 channels), byte-aligned relative to
        // the config's start, with a 1-byte comment; all of it consumed.
        let mut w = BitWriter::default();
        w.write(5, 2);
        w.write(4, 4);
        w.write(4, 0);
        w.write(3, 0);
        for (n, v) in [
            (4, 0),
            (2, 1),
            (4, 4),
            (4, 1),
            (4, 0),
            (4, 0),
            (2, 0),
            (3, 0),
            (4, 0),
            (1, 0),
            (1, 0),
            (1, 0),
        ] {
            w.write(n, v);
        }
        w.write(1, 1); // front_element_is_cpe
        w.write(4, 0);
        w.write(1, 0); // byte_alignment
        w.write(8, 1);
        w.write(8, b'x'.into());
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        let asc = AudioSpecificConfig::parse(&mut r).unwrap();
        assert_eq!((asc.pce_channels, r.bits_left()), (2, 0), "{asc:?}");
        let e = asc.decodable().unwrap_err();
        assert!(
            e.to_string()
                .contains("program config element (2 channels)"),
            "{e}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        // 5.1 LC.
        let e = parse_generic_config(&[0x11, 0xB0]).unwrap_err();
        assert!(e.to_string().contains("5.1"), "{e}");
        // AAC Main.
        let e = parse_generic_config(&hex("0990")).unwrap_err();
        assert!(e.to_string().contains("AAC Main"), "{e}");
        // HE-AAC over an AAC Main core: AOT 5, 24 kHz, mono, 48 kHz, core AOT 1.
        let e = parse_generic_config(&hex("2b098400")).unwrap_err();
        assert!(e.to_string().contains("HE-AAC (SBR)"), "{e}");
        // 960-sample frames.
        let e = parse_generic_config(&hex("140c")).unwrap_err();
        assert!(e.to_string().contains("960"), "{e}");
        assert!(matches!(
            parse_generic_config(&[0x12]),
            Err(AudioError::InvalidConfig(_))
        ));
        // Reserved sampling frequency index 13.
        assert!(matches!(
            parse_generic_config(&hex("1688")),
            Err(AudioError::InvalidConfig(_))
        ));
        // Every prefix of every real config: an answer, never a panic.
        for (_, generic, latm, _, _) in real_configs() {
            for config in [hex(generic), hex(latm)] {
                for len in 0..config.len() {
                    let _ = parse_generic_config(&config[..len]);
                    let _ = parse_stream_mux_config(&config[..len]);
                }
            }
        }
    }

    #[test]
    fn rfc3640_splits_and_joins() {
        let mut d = Rfc3640::new(13, 3, 3, 1024);
        let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
        // Two AUs of 3 and 2 bytes.
        let pkt = [0x00, 0x20, 0x00, 0x18, 0x00, 0x10, 1, 2, 3, 4, 5];
        d.push(100, &pkt, &mut |ts, au| got.push((ts, au.to_vec())));
        assert_eq!(got, vec![(100, vec![1, 2, 3]), (1124, vec![4, 5])]);
        got.clear();
        // One AU of 5 bytes in two fragments.
        d.push(2000, &[0x00, 0x10, 0x00, 0x28, 1, 2, 3], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert!(got.is_empty());
        d.push(2000, &[0x00, 0x10, 0x00, 0x28, 4, 5], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert_eq!(got, vec![(2000, vec![1, 2, 3, 4, 5])]);
        // Garbage never panics.
        for len in 0..12 {
            let r = d.push(1, &[0xFF; 12][..len], &mut |_, _| {});
            assert!(r.malformed || len >= 2, "len {len}");
        }
    }

    #[test]
    fn latm_lengths_and_fragments() {
        let mut d = Latm::new(0, 1024);
        let mut got: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut long = vec![0xFF, 0x01];
        long.extend((0..256).map(|i| i as u8));
        d.push(7, &long[..100], &mut |ts, au| got.push((ts, au.to_vec())));
        assert!(got.is_empty());
        d.push(7, &long[100..], &mut |ts, au| got.push((ts, au.to_vec())));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 256);
        got.clear();
        d.push(9, &[2, 0xA, 0xB, 1, 0xC], &mut |ts, au| {
            got.push((ts, au.to_vec()))
        });
        assert_eq!(got, vec![(9, vec![0xA, 0xB]), (1033, vec![0xC])]);
    }
}
