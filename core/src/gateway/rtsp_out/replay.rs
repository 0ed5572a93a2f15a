//! A new UDP player's start on the cached GOP (`RawGop`), paced: at most `REPLAY_BURST`
//! datagrams every `REPLAY_STEP`, from a cursor into the GOP. Sent at once, a 2 s GOP is
//! hundreds of datagrams in one burst, more than a player's receive buffer may hold (Linux's
//! default is 208 KiB, each datagram counted with its overhead): a lost keyframe makes the
//! player wait a whole GOP. The camera's packets that come meanwhile are appended to the GOP and reach the
//! player through the cursor, in order; once it is at the end, the player gets them live. A new
//! keyframe before that sends the rest of the old GOP at once (what the player still lacks,
//! rarely much: a replay lasts milliseconds), so the numbering has no gap.
//! TCP players are not paced: the connection's flow control does it.

use super::*;

/// Datagrams of the GOP one player gets per step...
pub(super) const REPLAY_BURST: usize = 16;
/// ...and the time between steps: at most 16,000 datagrams a second (about 150 Mbit/s of
/// 1,200-byte packets, well above any camera, so the replay catches up with live: a 2 Mbit/s
/// GOP of 2 s, about 420 datagrams, in 27 ms), in bursts a receive buffer holds.
pub(super) const REPLAY_STEP: Duration = Duration::from_millis(1);

/// Where a UDP player is in the stream's cached GOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replay {
    /// The GOP it walks (`RawGop::generation`): another one means a new keyframe came (the
    /// player continues live from it) or the GOP was dropped (the player waits for a keyframe).
    generation: u64,
    /// The next packet of the GOP to send.
    next: usize,
    /// When the next step may send.
    pub(super) due: Instant,
}

impl Replay {
    /// Plays `gop` from its start, if it holds a keyframe to start from.
    pub(super) fn start(gop: &RawGop, now: Instant) -> Option<Replay> {
        (gop.len() > 0).then_some(Replay {
            generation: gop.generation(),
            next: 0,
            due: now,
        })
    }

    /// Still walking `gop` (a live packet for the player is in it, and comes through here).
    pub(super) fn walks(&self, gop: &RawGop) -> bool {
        self.generation == gop.generation()
    }
}

impl Gateway {
    /// One step of player `conn`'s replay, if due: the next `REPLAY_BURST` packets of its
    /// stream's GOP to its UDP ports; at the GOP's end the replay ends and live packets follow.
    pub(super) fn replay_step(&mut self, conn: ConnId, now: Instant) {
        let Some(p) = self.players.get_mut(&conn) else {
            return;
        };
        let Some(r) = p.replay else {
            return;
        };
        if p.closing {
            p.replay = None;
            return;
        }
        if r.due > now {
            return;
        }
        let Some(gop) = p
            .stream
            .and_then(|id| self.streams.get(&id))
            .map(|s| &s.raw_gop)
        else {
            p.replay = None;
            return;
        };
        if !r.walks(gop) {
            // Superseded by a new GOP (live from its keyframe on); a GOP that was dropped (an
            // overflow) leaves the player waiting for the next keyframe.
            p.replay = None;
            p.started &= gop.len() > 0;
            return;
        }
        let mut next = r.next;
        for (track, data) in gop.packets_from(r.next).take(REPLAY_BURST) {
            next += 1;
            if let Some(Some(PlayerRoute::Udp(to, _))) = p.routes.get(track) {
                let out = &mut p.out;
                self.player_udp
                    .push(*to, false, |b| out.rewrite(now, track, data, b));
            }
        }
        p.replay = (next < gop.len()).then_some(Replay {
            next,
            due: now + REPLAY_STEP,
            ..r
        });
    }
}

impl FanOut<'_> {
    /// A keyframe is about to start a new GOP: players still replaying the current one get the
    /// rest of it now, ahead of the keyframe, and are live from there.
    pub(super) fn finish_replays(&mut self) {
        for conn in self.player_conns {
            let Some(p) = self.players.get_mut(conn) else {
                continue;
            };
            let Some(r) = p.replay.take() else {
                continue;
            };
            if p.closing || !r.walks(self.raw_gop) {
                continue;
            }
            for (track, data) in self.raw_gop.packets_from(r.next) {
                if let Some(Some(PlayerRoute::Udp(to, _))) = p.routes.get(track) {
                    let (out, now) = (&mut p.out, self.now);
                    self.player_udp
                        .push(*to, false, |b| out.rewrite(now, track, data, b));
                }
            }
        }
    }
}
