//! GOP replays (joins and keyframe answers) are written a bounded share per loop turn, behind
//! the live viewers' packets, and each replaying viewer still gets the whole GOP in order, then
//! the live stream with no gap and no duplicate.

use super::*;
use camgate_testkit::nal::random;
use camgate_testkit::Rng;

/// One loop turn's share of the replays: 4 slices of 48 packets (`gateway::replays`).
const SHARE: usize = 4 * 48;

const URL: &str = "rtsp://127.0.0.1:8554/cam";

/// What an RTP-mode browser received: (sequence number, RTP time, payload hash).
type Received = [(u64, u32, u64)];

/// A GOP of about 90 packets, every one different (random bytes): a 60 KB keyframe (frame
/// `first`) then 7 frames of 5 KB, at 25 fps.
fn cache_a_big_gop(h: &mut Harness, rng: &mut Rng, first: u32) {
    h.camera.send_frame(first * 3600, &[random(rng, 5, 60_000)]);
    h.run_for(Duration::from_millis(40));
    for n in first + 1..first + 8 {
        h.camera.send_frame(n * 3600, &[random(rng, 1, 5000)]);
        h.run_for(Duration::from_millis(40));
    }
}

/// RTP-mode browser `b` asks for a keyframe (PLI).
fn request_keyframe(h: &mut Harness, b: usize) {
    let mid = h.browsers[b].video_mid.unwrap();
    let mut api = h.browsers[b].rtc.direct_api();
    let rx = api.stream_rx_by_mid(mid, None).expect("receiving video");
    rx.request_keyframe(str0m::media::KeyframeRequestKind::Pli);
}

fn hashes(packets: &Received) -> Vec<u64> {
    packets.iter().map(|p| p.2).collect()
}

fn numbered_without_gap(packets: &Received) -> bool {
    packets.windows(2).all(|w| w[1].0 == w[0].0 + 1)
}

/// Whether every browser of `joiners` got as many packets as `live`.
fn caught_up(h: &Harness, live: usize, joiners: &[usize]) -> bool {
    let all = h.browsers[live].rtp_seq.len();
    joiners.iter().all(|&j| h.browsers[j].rtp_seq.len() >= all)
}

/// `joiner` got what `live` (watching since before the keyframe) got: the same packets in the
/// same order, numbered without a gap; the frames cached when its replay began (at least
/// `frames`) one tick apart, the newest of them and the rest at the camera's spacing. Returns
/// how many frames were pulled together.
fn assert_replayed_then_live(joiner: &Received, live: &Received, frames: usize) -> usize {
    assert_eq!(joiner.len(), live.len(), "every packet, once");
    assert!(hashes(joiner) == hashes(live), "the same packets in order");
    assert!(numbered_without_gap(joiner), "no gap in the numbering");
    let steps = |v: &Received| -> Vec<i64> {
        (v.windows(2))
            .map(|w| i64::from(w[1].1.wrapping_sub(w[0].1) as i32))
            .collect()
    };
    let (got, want) = (steps(joiner), steps(live));
    let starts: Vec<usize> = (0..want.len()).filter(|&i| want[i] != 0).collect();
    let pulled = starts.iter().take_while(|&&i| got[i] == 1).count();
    assert!(pulled + 1 >= frames, "{pulled} frame starts one tick apart");
    for &i in &starts[pulled..] {
        assert_eq!(got[i], want[i], "the camera's spacing after packet {i}");
    }
    for i in (0..want.len()).filter(|&i| want[i] == 0) {
        assert_eq!(got[i], 0, "one frame, one RTP time (packet {i})");
    }
    pulled + 1
}

/// Runs turns of 10 ms, the camera sending a one-packet frame every 4th, until `done`.
/// Returns per turn: the media datagrams `worker` sent, and where among them `live`'s frame
/// was in a turn the camera sent one.
fn storm(
    h: &mut Harness,
    rng: &mut Rng,
    frame: &mut u32,
    worker: u16,
    live: usize,
    done: impl Fn(&Harness) -> bool,
) -> (Vec<usize>, Vec<usize>) {
    h.media_log = Some(Vec::new());
    let from = 20000 + worker;
    let live_addr = h.browsers[live].addr;
    let (mut sent, mut live_at) = (Vec::new(), Vec::new());
    for turn in 0..400 {
        let sends = turn % 4 == 0;
        if sends {
            h.camera.send_frame(*frame * 3600, &[random(rng, 1, 1000)]);
            *frame += 1;
        }
        h.step(Duration::from_millis(10));
        let log = h.media_log.as_ref().unwrap().last().unwrap();
        let log: Vec<_> = log.iter().filter(|d| d.0.port() == from).collect();
        sent.push(log.len());
        if sends {
            let at = log.iter().position(|d| d.1 == live_addr);
            live_at.push(at.expect("the live viewer gets each frame in the turn it comes"));
        }
        if !sends && done(&*h) {
            h.media_log = None;
            return (sent, live_at);
        }
    }
    panic!("the replays never caught up");
}

#[test]
fn a_join_storm_is_written_a_bounded_share_per_turn_behind_the_live_viewers() {
    const JOINERS: usize = 100;
    let mut rng = Rng::new(19);
    let mut h = Harness::new();
    let live = h.play_with(URL, true);
    h.run_for(Duration::from_millis(300));
    cache_a_big_gop(&mut h, &mut rng, 0);
    let gop = h.browsers[live].rtp_seq.len();
    assert!(gop > 80, "{gop} packets cached");
    let joiners: Vec<usize> = (0..JOINERS).map(|_| h.play_with(URL, true)).collect();
    h.run_for(Duration::from_millis(300)); // all connected, no media since

    // The camera's next frame starts 100 replays of the GOP (about 9,000 packets).
    let mut frame = 8;
    let done = |h: &Harness| caught_up(h, live, &joiners);
    let (sent, live_at) = storm(&mut h, &mut rng, &mut frame, 0, live, done);
    println!(
        "join storm: {} turns, at most {} datagrams in one, live frame at most {} datagrams into its turn",
        sent.len(),
        sent.iter().max().unwrap(),
        live_at.iter().max().unwrap()
    );
    // No turn carries more than its share of replays and one live frame to every viewer;
    // the live viewer's frames leave in the turn they came, behind at most one share (and
    // the other live viewers' copies).
    assert!(sent.iter().all(|n| *n <= SHARE + JOINERS + 1), "{sent:?}");
    assert!(
        live_at.iter().all(|at| *at <= SHARE + JOINERS),
        "{live_at:?}"
    );
    assert!(
        live_at[0] == 0,
        "first of all in the storm's turn: {live_at:?}"
    );
    assert!(sent.len() >= JOINERS * gop / SHARE, "spread over turns");
    // Each joiner got the whole GOP in order (frames 0..=8 and those cached while it waited
    // for its turn one tick apart), then the live frames: no gap, no duplicate.
    let mut pulled = Vec::new();
    for &j in &joiners {
        let reference = &h.browsers[live].rtp_seq;
        pulled.push(assert_replayed_then_live(
            &h.browsers[j].rtp_seq,
            reference,
            9,
        ));
        assert_eq!(h.browsers[j].statuses(), ["PENDING", "PLAYING"]);
    }
    // A replay's snapshot is taken when its first slice goes, not when it was queued: the
    // last in line see the frames that came meanwhile pulled together too, not a second of
    // real-time frames to play out behind the present.
    println!("frames pulled together per joiner: {pulled:?}");
    assert!(pulled.iter().max() > Some(&10), "{pulled:?}");

    // A storm of keyframe requests (PLI) is answered the same way, from the same cursor. A
    // second one allocates nothing per packet in camgate: str0m's one buffer per datagram,
    // and a few per viewer (str0m's timers, its queue growing for a replay; a per-packet
    // allocation would be 10,000 more).
    pli_storm(&mut h, &mut rng, &mut frame, live, &joiners, 0);
    // A new GOP, no bigger than the one answered (answers come at most once a second).
    let gop_start = h.browsers[live].rtp_seq.len();
    cache_a_big_gop(&mut h, &mut rng, frame);
    frame += 8;
    h.run_for(Duration::from_secs(1));
    let (allocs, datagrams) = pli_storm(&mut h, &mut rng, &mut frame, live, &joiners, gop_start);
    assert!(
        allocs <= datagrams + 8 * JOINERS,
        "{allocs} allocations for {datagrams} datagrams"
    );
    assert_eq!(
        h.gateway.stats().keyframe_requests_answered,
        2 * JOINERS as u64
    );
}

/// Every browser of `joiners` asks for a keyframe at once; each gets the whole cache again
/// (what `live` got from its packet `gop_start` on, the keyframe), then the live frames,
/// spread over turns as a join storm is. Returns the allocations in the gateway's timeouts
/// and datagram taking meanwhile, and the datagrams.
fn pli_storm(
    h: &mut Harness,
    rng: &mut Rng,
    frame: &mut u32,
    live: usize,
    joiners: &[usize],
    gop_start: usize,
) -> (usize, usize) {
    let (t0, x0, datagrams0) = (h.timeout_allocs, h.transmit_allocs, h.datagrams);
    for &j in joiners {
        request_keyframe(h, j);
    }
    // The requests reach camgate; the answers start going out next turn.
    h.step(Duration::from_millis(10));
    let before: Vec<usize> = (joiners.iter())
        .map(|&j| h.browsers[j].rtp_seq.len())
        .collect();
    let answered = |h: &Harness| {
        let all = h.browsers[live].rtp_seq.len() - gop_start;
        (joiners.iter().zip(&before)).all(|(&j, &b)| h.browsers[j].rtp_seq.len() >= b + all)
    };
    let (sent, live_at) = storm(h, rng, frame, 0, live, answered);
    let (timeouts, transmits) = (h.timeout_allocs - t0, h.transmit_allocs - x0);
    let datagrams = h.datagrams - datagrams0;
    println!(
        "PLI storm: {} turns, at most {} datagrams in one; {datagrams} datagrams, allocations: \
         {timeouts} in timeouts, {transmits} taking datagrams",
        sent.len(),
        sent.iter().max().unwrap()
    );
    let viewers = joiners.len() + 1;
    assert!(sent.iter().all(|n| *n <= SHARE + viewers), "{sent:?}");
    assert!(
        live_at.iter().all(|at| *at <= SHARE + viewers),
        "{live_at:?}"
    );
    let live_hashes = hashes(&h.browsers[live].rtp_seq);
    for (&j, &b) in joiners.iter().zip(&before) {
        let got = &h.browsers[j].rtp_seq;
        assert!(numbered_without_gap(got), "no gap across the answer");
        assert!(hashes(&got[b..]) == live_hashes[gop_start..], "browser {j}");
    }
    (timeouts + transmits, datagrams)
}

#[test]
fn a_keyframe_that_arrives_mid_replay_restarts_the_replay_on_it() {
    let mut rng = Rng::new(7);
    let mut h = Harness::new();
    let live = h.play_with(URL, true);
    h.run_for(Duration::from_millis(300));
    cache_a_big_gop(&mut h, &mut rng, 0);
    let gop = h.browsers[live].rtp_seq.len();
    let joiner = h.play_with(URL, true);
    h.run_for(Duration::from_millis(300));
    // Frame 8 starts the replay; its first slice goes out as the camera's next keyframe
    // (frame 9) replaces the cache.
    h.camera.send_frame(8 * 3600, &[random(&mut rng, 1, 1000)]);
    h.step(Duration::from_millis(10));
    h.camera.send_frame(9 * 3600, &[random(&mut rng, 5, 4000)]);
    h.step(Duration::from_millis(10));
    for n in 10..14 {
        h.camera.send_frame(n * 3600, &[random(&mut rng, 1, 5000)]);
        h.run_for(Duration::from_millis(40));
    }
    let (got, all) = (&h.browsers[joiner].rtp_seq, &h.browsers[live].rtp_seq);
    let keyframe = gop + 1; // frame 9's first packet among the live viewer's
    let cut = (got.iter().zip(all.iter()))
        .position(|(a, b)| a.2 != b.2)
        .expect("the joiner skipped part of the old GOP");
    assert!(cut > 0 && cut < gop, "cut at {cut} of {gop}");
    assert!(
        hashes(&got[cut..]) == hashes(&all[keyframe..]),
        "then the new keyframe and the live stream, whole and in order"
    );
    assert!(
        numbered_without_gap(got),
        "no gap where the replay restarted"
    );
    assert_eq!(h.browsers[joiner].statuses(), ["PENDING", "PLAYING"]);
}

#[test]
fn a_mirrors_join_storm_is_spread_over_its_workers_turns_too() {
    const JOINERS: usize = 24;
    let (mut h, _) = Harness::with_workers_margin(2, 0);
    let mut rng = Rng::new(5);
    let on_mirror = |h: &Harness, b: usize| h.browsers[b].answer().contains(" 20001 typ host");
    let live0 = h.play_with(URL, true);
    h.run_for(Duration::from_millis(300));
    let live = h.play_with(URL, true);
    h.run_for(Duration::from_millis(300));
    assert!(
        !on_mirror(&h, live0) && on_mirror(&h, live),
        "one viewer on each worker"
    );
    cache_a_big_gop(&mut h, &mut rng, 0);
    let gop = h.browsers[live].rtp_seq.len();
    assert_eq!(
        gop,
        h.browsers[live0].rtp_seq.len(),
        "the mirror relays it all"
    );
    let joiners: Vec<usize> = (0..JOINERS).map(|_| h.play_with(URL, true)).collect();
    h.run_for(Duration::from_millis(300));
    let mirrored: Vec<usize> = (joiners.iter().copied())
        .filter(|&j| on_mirror(&h, j))
        .collect();
    assert!(
        mirrored.len() >= JOINERS / 3,
        "{} on the mirror",
        mirrored.len()
    );

    let mut frame = 8;
    let done = |h: &Harness| caught_up(h, live, &mirrored);
    let (sent, live_at) = storm(&mut h, &mut rng, &mut frame, 1, live, done);
    println!("mirror storm: worker 1 sent {sent:?}; live frame at {live_at:?}");
    let viewers = mirrored.len() + 1;
    assert!(sent.iter().all(|n| *n <= SHARE + viewers), "{sent:?}");
    assert!(
        live_at.iter().all(|at| *at <= SHARE + viewers),
        "{live_at:?}"
    );
    assert!(
        live_at[0] == 0,
        "first of all in the storm's turn: {live_at:?}"
    );
    for &j in &mirrored {
        assert_replayed_then_live(&h.browsers[j].rtp_seq, &h.browsers[live].rtp_seq, 9);
    }
}
