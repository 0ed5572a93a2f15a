//! Replays the fuzz corpora through the fuzz harnesses in a plain `cargo test`: no nightly, no
//! cargo-fuzz. See docs/FUZZING.md.
//!
//! For each target of `camgate_testkit::fuzz` (the very code the fuzz binaries run),
//! every file in `fuzz/seeds/<target>/` (committed), `fuzz/corpus/<target>/` and
//! `fuzz/artifacts/<target>/` (both local, left by fuzzing runs) is fed to the harness. A crash
//! file that cargo-fuzz leaves in `fuzz/artifacts/` therefore fails this test until it is fixed.

use camgate_testkit::fuzz as harness;
use camgate_testkit::fuzz::replay;
use camgate_testkit::hex::decode as hex;
use camgate_testkit::replay_tests;

replay_tests!(
    harness::TARGETS;
    rtsp_framing,
    rtsp_client,
    camera_sdp,
    rtp_parse,
    h264_relay,
    h265_relay,
    h264_depacketize,
    signaling,
    rtsp_url,
    vp8_relay,
    audio_transcode,
    rtcp,
    rtp_reorder,
    h264_slice,
    camera_udp,
    stun_username,
    rtsp_server,
    viewer_token,
);

#[test]
fn every_target_is_replayed() {
    replay::check_binaries(harness::TARGETS, 18);
}

/// `h264_relay` input: header byte, then `(flags, len, payload)` records (see
/// `harness::packet_stream`); every record here is in order, same timestamp, no marker.
fn relay_stream(max_payload: u8, payloads: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![max_payload - 3];
    for p in payloads {
        v.push(0);
        v.push(u8::try_from(p.len()).unwrap());
        v.extend_from_slice(p);
    }
    v
}

/// Found by `h264_relay` (fuzz/run-all.sh, 90 s). An SPS sent as FU-A whose start fragment was
/// already flushed (here: a slice packet interrupts the FU-A), then its end fragment and a PPS
/// are held; at the IDR, `H264Relay::push` sees SPS and PPS in the held packets but marks
/// `keyframe_start` on the first held packet that *starts* a parameter set, the PPS. A viewer
/// joining there gets PPS + IDR without SPS.
#[test]

fn relay_keyframe_start_after_held_sps_fu_end_fuzzed() {
    let input = hex(
        "02000b7c8742c01ed900a02ff970000b84ffe95dc0c0d4a0000003000b7c47002000000791e2c5c9000468cb8cb2\
         002f7c850102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627",
    );
    harness::h264_relay(&input);
}

/// The same bug from a well-formed stream: AUD, six SEI and an SPS in three FU-A fragments fill
/// the hold (8 packets) at the SPS middle fragment, so the SPS start goes out unmarked; the SPS
/// end fragment and the PPS are held, and the PPS gets `keyframe_start`.
#[test]

fn relay_keyframe_start_after_held_sps_fu_end_wellformed() {
    let sps = hex("6742c01ed900a02ff97016a0c0c0d4a0000003002000000791e2c5c9");
    let fu = |s: bool, e: bool, body: &[u8]| {
        let mut v = vec![
            0x7C,
            0x07 | if s { 0x80 } else { 0 } | if e { 0x40 } else { 0 },
        ];
        v.extend_from_slice(body);
        v
    };
    let (a, b, c) = (
        fu(true, false, &sps[1..10]),
        fu(false, false, &sps[10..19]),
        fu(false, true, &sps[19..]),
    );
    let sei: &[u8] = &[0x06, 0x05, 0x01, 0xAA, 0x80];
    let idr: Vec<u8> = [0x65].into_iter().chain(1..=40u8).collect();
    let input = relay_stream(
        200,
        &[
            &[0x09, 0x10],
            sei,
            sei,
            sei,
            sei,
            sei,
            sei,
            &a,
            &b,
            &c,
            &[0x68, 0xCB, 0x8C, 0xB2],
            &idr,
        ],
    );
    harness::h264_relay(&input);
}

/// Found by `h264_relay` (fork mode, 90 s): `keyframe_start` lands on an SPS (re-fragmented FU-A)
/// and the IDR follows with no PPS in between. Cause: a garbage "SPS" holding a start code was
/// learned, and re-splitting the injected STAP-A at that start code swallowed the PPS. Fixed by
/// refusing parameter sets that contain 00 00 00/01/02.
#[test]
fn relay_keyframe_start_without_pps_fuzzed() {
    let input = hex(
        "6720015c00392f6e1c4009001c6742c01e400505000001050505050505050505052a0505050505050505057a\
         05050505050505050505250505056505050e050505050505050505050000000000050505050591050505b200\
         00016505050501050505050505ffffffff050505050505050505050505050500000000000505050505910505\
         05b2000001650505050105050505b20000016505050501050505050505ffffffff0505050501050505050505\
         ffff05050505ff02000b7c8742c01ed90092105c00108002000b7c8742c01ed95c00100120015c00000c0500\
         00000000050505050591050505b200000165050505010000016505050501050505050505ffffffff05050505\
         01050505050505ffff05050505ff05ff050505050505016505050501050505050505ffffffff050505050505\
         05050505c01e400505000001050505050505050505052a0505050505050505057a0505050505050505050525\
         0505056505fe050e05050505050505050505050505000000000005aa7cc70b7cc700c0b28c42c01ed9d4000b\
         7cc700c0b28c42c01ed9d4a00b7cc700c0b205050505050005050005303a0505b20000016505050501050505\
         050505ffffffff05050505050505050505050505050000000000050505050591050505b20000016505050501\
         05050505b20000016505050501050505050505ffffffff0505050501050505050505ffff05050505ff02000b\
         7c8742c01ed90067105c00108002000b7c8742c01ed95c00100120015c00000c050000000000050505050591\
         050505b20000016505050501050505050505ffffffff05050505050505050505050505050000000000050505\
         050591050505b2000001650505050105050505b20000016505050501050505050505ffffffff050505050105\
         0505050505ffff05050505ff05ff050505050505016505050501050505050505ffffffff0505050505050505\
         0505050505050000080808080808050505050505050505050505050000000000050505050591050505b20000\
         01650505050105050505b20000016505050501050505050505ff05",
    );
    harness::h264_relay(&input);
}

/// `viewer_token` without cargo-fuzz: 20,000 mutations of its seeds (bytes changed, inserted,
/// dropped; signed payloads and sent tokens alike) through the harness.
#[test]
fn viewer_token_survives_mutated_seeds() {
    let dir = replay::fuzz_dir().join("seeds/viewer_token");
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!seeds.is_empty());
    let mut rng = camgate_testkit::Rng::new(18);
    for _ in 0..20_000 {
        let mut input = seeds[rng.pick(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.pick(input.len().max(1));
            match rng.below(3) {
                0 if !input.is_empty() => input[at] = rng.below(256) as u8,
                1 => input.insert(at.min(input.len()), rng.below(256) as u8),
                _ if input.len() > 1 => {
                    input.remove(at.min(input.len() - 1));
                }
                _ => {}
            }
        }
        harness::viewer_token(&input);
    }
}
