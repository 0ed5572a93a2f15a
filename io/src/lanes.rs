//! Media lanes: how a camera's packets reach the mirrors of it on other workers.
//!
//! The origin worker's gateway queues `MirrorItem`s per mirror worker
//! (`Gateway::mirror_outbox`); its loop appends them to the lane from that worker to the
//! mirror's, and the mirror's loop swaps the lane out whole and hands the items to its gateway
//! (`Gateway::handle_mirrored`). Appending moves the items and swapping exchanges buffers, so
//! once the vectors have grown the steady state allocates nothing; the mirror's loop is woken
//! only when its lane goes from empty to not empty.

use std::sync::{Mutex, MutexGuard};

use camgate_core::gateway::StreamId;
use camgate_core::mirror::MirrorItem;

/// Media items a lane holds at most: about 5 s of a 4 Mbit/s camera with audio. A mirror
/// whose worker falls further behind (starved of CPU) loses media instead of memory growing.
pub const MAX_ITEMS: usize = 2048;

#[derive(Default)]
struct Lane {
    items: Vec<MirrorItem>,
    /// Mirrors that lost media since the reader last took the lane: each got a `Resync`
    /// (its viewers skip to the next keyframe), once.
    lagging: Vec<StreamId>,
}

/// Items from one worker to another, in order.
#[derive(Default)]
pub struct MediaLane {
    lane: Mutex<Lane>,
}

impl MediaLane {
    /// Moves everything in `outbox` to the end of the lane (`outbox` keeps its capacity);
    /// true when the lane was empty, i.e. its reader must be woken. A full lane
    /// (`MAX_ITEMS`) takes no more media: the mirrors that lose some get a `Resync` instead,
    /// so their viewers skip to the camera's next keyframe rather than see a broken picture.
    /// What a mirror is told besides media (ready, failed) is never dropped.
    pub fn append(&self, outbox: &mut Vec<MirrorItem>) -> bool {
        let mut lane = self.lock();
        let was_empty = lane.items.is_empty();
        if lane.items.len() + outbox.len() <= MAX_ITEMS {
            lane.items.append(outbox);
        } else {
            let Lane { items, lagging } = &mut *lane;
            for item in outbox.drain(..) {
                let media_of = match &item {
                    MirrorItem::Video { mirror, .. }
                    | MirrorItem::Audio { mirror, .. }
                    | MirrorItem::Raw { mirror, .. } => Some(*mirror),
                    _ => None,
                };
                match media_of {
                    Some(mirror) if items.len() >= MAX_ITEMS => {
                        if !lagging.contains(&mirror) {
                            lagging.push(mirror);
                            items.push(MirrorItem::Resync { mirror });
                        }
                    }
                    _ => items.push(item),
                }
            }
        }
        was_empty && !lane.items.is_empty()
    }

    /// Takes everything in the lane into `into` (which must be empty); `into`'s old buffer
    /// becomes the lane's, so neither side allocates once both have grown.
    pub fn take(&self, into: &mut Vec<MirrorItem>) {
        debug_assert!(into.is_empty());
        let mut lane = self.lock();
        std::mem::swap(&mut lane.items, into);
        lane.lagging.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Lane> {
        // Appends and swaps leave the lane consistent even if a holder panicked.
        self.lane.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lanes between `workers` workers: from worker `a` to worker `b` at `a * workers + b`.
pub struct Lanes {
    lanes: Box<[MediaLane]>,
    workers: usize,
}

impl Lanes {
    pub fn new(workers: usize) -> Self {
        Self {
            lanes: (0..workers * workers)
                .map(|_| MediaLane::default())
                .collect(),
            workers,
        }
    }

    /// The lane from worker `from` to worker `to`.
    pub fn between(&self, from: usize, to: usize) -> &MediaLane {
        &self.lanes[from * self.workers + to]
    }

    /// The lanes into worker `to` from every other worker.
    pub fn into_worker(&self, to: usize) -> impl Iterator<Item = &MediaLane> {
        (0..self.workers)
            .filter(move |from| *from != to)
            .map(move |from| self.between(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camgate_core::gateway::StreamId;
    use camgate_core::media::VideoPacket;
    use std::sync::Arc;
    use std::time::Instant;

    fn video(seq: u16) -> MirrorItem {
        MirrorItem::Video {
            mirror: StreamId(1),
            packet: VideoPacket {
                payload: Arc::from(&[1u8, 2, 3][..]),
                marker: true,
                rtp_time: 0,
                seq,
                keyframe_start: false,
            },
            wall: Instant::now(),
        }
    }

    fn seqs(items: &[MirrorItem]) -> Vec<u16> {
        items
            .iter()
            .map(|i| match i {
                MirrorItem::Video { packet, .. } => packet.seq,
                _ => 0,
            })
            .collect()
    }

    #[test]
    fn a_lane_wakes_its_reader_only_when_it_was_empty_and_keeps_order() {
        let lane = MediaLane::default();
        assert!(lane.append(&mut vec![video(1)]), "empty lane: wake");
        assert!(
            !lane.append(&mut vec![video(2), video(3)]),
            "reader not done yet"
        );
        assert!(!lane.append(&mut Vec::new()), "nothing appended: no wake");
        let mut got = Vec::new();
        lane.take(&mut got);
        assert_eq!(seqs(&got), [1, 2, 3]);
        got.clear();
        assert!(
            lane.append(&mut vec![video(4)]),
            "drained: the next append wakes again"
        );
    }

    #[test]
    fn appending_and_swapping_reuse_every_buffer() {
        let lane = MediaLane::default();
        let mut outbox = Vec::with_capacity(64);
        let mut reader = Vec::with_capacity(64);
        outbox.extend((0..32).map(video));
        lane.append(&mut outbox);
        assert_eq!(outbox.capacity(), 64, "the outbox keeps its buffer");
        lane.take(&mut reader);
        reader.clear();
        // The lane now holds the reader's old 64-slot buffer.
        outbox.extend((0..64).map(video));
        lane.append(&mut outbox);
        assert_eq!(
            lane.lock().items.capacity(),
            64,
            "appending 64 items reallocated nothing"
        );
    }

    #[test]
    fn each_pair_of_workers_has_its_own_lane() {
        let lanes = Lanes::new(3);
        lanes.between(0, 2).append(&mut vec![video(1)]);
        lanes.between(1, 2).append(&mut vec![video(2)]);
        lanes.between(2, 0).append(&mut vec![video(3)]);
        let mut into_2 = Vec::new();
        for lane in lanes.into_worker(2) {
            let mut got = Vec::new();
            lane.take(&mut got);
            into_2.extend(got);
        }
        assert_eq!(seqs(&into_2), [1, 2]);
    }

    #[test]
    fn a_full_lane_drops_media_and_resyncs_each_lagging_mirror_once() {
        let lane = MediaLane::default();
        let mut outbox: Vec<MirrorItem> = (0..MAX_ITEMS as u16).map(video).collect();
        lane.append(&mut outbox);
        // The reader is stalled: more media (relayed, and camera packets for a mirror's RTSP
        // players), then news that must not be lost.
        outbox.extend((0..100).map(video));
        outbox.push(MirrorItem::Raw {
            mirror: StreamId(1),
            track: 0,
            rtcp: false,
            packet: Arc::from(&[0x80u8, 96][..]),
        });
        outbox.push(MirrorItem::Failed {
            mirror: StreamId(1),
            info: "gone".into(),
        });
        lane.append(&mut outbox);
        let mut got = Vec::new();
        lane.take(&mut got);
        assert_eq!(
            got.len(),
            MAX_ITEMS + 2,
            "capped: one resync and the news added"
        );
        assert!(matches!(got[MAX_ITEMS], MirrorItem::Resync { mirror } if mirror == StreamId(1)));
        assert!(matches!(got[MAX_ITEMS + 1], MirrorItem::Failed { .. }));
        // Taken: the lane has room again and media flows.
        got.clear();
        lane.append(&mut vec![video(7)]);
        lane.take(&mut got);
        assert_eq!(seqs(&got), [7]);
    }
}
