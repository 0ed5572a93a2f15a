//! GOP replays spread over loop turns.
//!
//! A viewer that joins starts on its stream's cached GOP, and a browser's keyframe request is
//! answered from it (see `gop`): up to 4 MiB (1 MiB for an answer) written and encrypted for one
//! viewer. Done in one go, a join storm (a wall of viewers opening at once, a burst of PLIs
//! after a network hiccup) made single loop turns last seconds: live viewers stalled behind
//! the replays, and at 200 viewers on a busy 2-core box turns of 10-16 s outlasted str0m's
//! 15 s ICE-lite window and lost viewers.
//!
//! So a replay is a cursor into the cache (`ViewerEntry::replay`, a few integers), and each
//! loop turn (`handle_timeout`, which the event loop runs once per turn) writes a bounded
//! share: `REPLAY_SLICE` packets per viewer, `REPLAY_PACKETS_PER_TURN` in all, oldest replays
//! first. Live packets are written on arrival, before that share, and `poll_timeout` asks the
//! loop to come back at once while replays remain. A replaying viewer gets no live video: the
//! cache grows with the live stream, and the cursor walks on through it until it has caught up;
//! then the fan-out writes to it. A new keyframe replacing the cache mid-replay restarts the
//! replay there (no gap in sequence numbers, nothing for the browser to NACK).

use super::*;
use crate::viewer::REPLAY_SLICE;

/// Replay packets written per loop turn over all viewers: 4 slices, as a camera's connection
/// gets 4 slices (of 64 KiB) per turn. About a frame's worth of live fan-out to 100 viewers
/// of a 2 Mbit/s camera (10 packets a frame).
pub(super) const REPLAY_PACKETS_PER_TURN: usize = 4 * REPLAY_SLICE;

impl Gateway {
    /// Viewer `v` starts (or restarts) a replay at `cursor`.
    pub(super) fn begin_replay(&mut self, v: ViewerId, cursor: crate::gop::ReplayCursor) {
        let Some(entry) = self.viewers.get_mut(v) else {
            return;
        };
        if entry.replay.replace(cursor).is_none() {
            self.replaying.push(v);
        }
    }

    /// Viewer `v` is gone: its replay with it.
    pub(super) fn end_replay(&mut self, v: ViewerId) {
        self.replaying.retain(|x| *x != v);
    }

    /// Whether replays wait for the next loop turn.
    pub(super) fn replays_pending(&self) -> bool {
        !self.replaying.is_empty()
    }

    /// This loop turn's share of the replays (see the module docs).
    pub(super) fn run_replays(&mut self, now: Instant) {
        let mut budget = REPLAY_PACKETS_PER_TURN;
        let mut kept = 0;
        for i in 0..self.replaying.len() {
            let v = self.replaying[i];
            let more = budget == 0 || self.replay_slice(v, now, &mut budget);
            if more {
                self.replaying[kept] = v;
                kept += 1;
            }
        }
        self.replaying.truncate(kept);
    }

    /// Writes the next slice of viewer `v`'s replay, at most `budget` packets (taken off it);
    /// false once the replay is over (caught up with the cache, or given up).
    fn replay_slice(&mut self, v: ViewerId, now: Instant, budget: &mut usize) -> bool {
        let Some(entry) = self.viewers.get_mut(v) else {
            return false;
        };
        let Some(mut cursor) = entry.replay.take() else {
            return false;
        };
        let (Some(s), Some(viewer)) = (self.streams.get(&entry.stream), entry.viewer.as_mut())
        else {
            return false;
        };
        if viewer.is_awaiting_keyframe() {
            return false; // the live stream's next keyframe restarts it
        }
        if viewer.awaiting_flush() {
            // Its last slice is not sent yet: str0m's queue holds one slice at a time.
            entry.replay = Some(cursor);
            return true;
        }
        let gop = s.pipeline.gop();
        let stale = gop.is_stale(&cursor);
        if stale || cursor.is_unstarted() {
            // Nothing sent yet: the frames cached while it waited for its turn are pulled
            // together too. Under way, a new GOP began (or the cache was emptied): start again
            // from its keyframe, at the camera's times (they follow what was sent).
            let after = cursor.after().filter(|_| cursor.is_unstarted());
            let restart = gop.cursor(after).zip(gop.first_seq_and_last_ts());
            let Some((fresh, (first_seq, _))) = restart else {
                viewer.wait_for_keyframe();
                return false;
            };
            if stale {
                viewer.restart_replay_at(first_seq);
            }
            cursor = fresh;
        }
        let pipeline = &s.pipeline;
        let written = gop.replay_from(&mut cursor, REPLAY_SLICE.min(*budget), |p, ts| {
            viewer.send_video(now, p, ts, pipeline.video_wallclock(ts, now));
        });
        *budget -= written;
        if viewer.wants_flush() {
            self.unflushed.push(v);
        }
        if let Some(codec) = pipeline.video_codec() {
            let info = || pipeline.info();
            announce_playing(entry, &s.redacted, codec, info, &mut self.outputs);
        }
        if gop.caught_up(&cursor) {
            return false;
        }
        entry.replay = Some(cursor);
        true
    }
}
