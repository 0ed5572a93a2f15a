//! The links between worker event loops, when camgate runs one loop per core.
//!
//! A gateway hands another worker's gateway a `Forward` (a viewer's `playStream` for a camera
//! that worker pulls, the statuses going back, REST startup/terminate). The message goes
//! through that worker's channel, and its loop is woken through its mio `Waker`. Media of a
//! camera mirrored to another worker goes through a media lane (`lanes`) instead.
//!
//! The table of which worker pulls which camera (`camgate_core::placement`) is shared here too,
//! behind a mutex: core holds no locks.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use camgate_core::gateway::Forward;
use camgate_core::mirror::MirrorItem;
use camgate_core::placement::{Placement, PlacementTable, SharedTable};
use mio::Waker;

use crate::lanes::Lanes;

/// The placement table behind a mutex, as the workers share it.
struct LockedTable(Mutex<PlacementTable>);

impl SharedTable for LockedTable {
    fn with(&self, f: &mut dyn FnMut(&mut PlacementTable)) {
        // Every update is a single insert/remove/add: a worker that panicked while holding the
        // lock left consistent data, so the table stays usable.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Handles on one placement table for `workers` workers, the i-th for worker i.
pub fn placements(workers: usize) -> Vec<Placement> {
    let shared: Arc<dyn SharedTable> =
        Arc::new(LockedTable(Mutex::new(PlacementTable::new(workers))));
    (0..workers)
        .map(|here| Placement::new(here, shared.clone()))
        .collect()
}

/// Mirrored items handed over at once by `take_media`.
pub const MEDIA_SLICE: usize = 64;

/// What goes through a worker's inbox: (from which worker, what).
type Letter = (usize, Forward);

/// One worker's ends of the links: its inbox, and the way to every worker's inbox.
pub struct WorkerLink {
    here: usize,
    peers: Vec<(Sender<Letter>, Arc<Waker>)>,
    inbox: Receiver<Letter>,
    lanes: Arc<Lanes>,
    /// Reused buffer of what came in on the lanes.
    incoming: Vec<MirrorItem>,
}

impl WorkerLink {
    /// Links for loops whose wakers are given in worker order; the i-th link is worker i's.
    pub fn link_all(wakers: Vec<Arc<Waker>>) -> Vec<WorkerLink> {
        let (senders, inboxes): (Vec<_>, Vec<_>) = wakers.iter().map(|_| channel()).unzip();
        let lanes = Arc::new(Lanes::new(wakers.len()));
        let peers: Vec<_> = senders.into_iter().zip(wakers).collect();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(here, inbox)| WorkerLink {
                here,
                peers: peers.clone(),
                inbox,
                lanes: lanes.clone(),
                incoming: Vec::new(),
            })
            .collect()
    }

    pub fn here(&self) -> usize {
        self.here
    }

    /// Hands `forward` to `worker` and wakes its loop. False if that worker is gone.
    pub fn send(&self, worker: usize, forward: Forward) -> bool {
        let Some((tx, waker)) = self.peers.get(worker) else {
            return false;
        };
        if tx.send((self.here, forward)).is_err() {
            return false;
        }
        waker.wake().is_ok()
    }

    /// Moves the items in `outbox` to the lane from here to `worker`, waking its loop if the
    /// lane was empty.
    pub fn send_media(&self, worker: usize, outbox: &mut Vec<MirrorItem>) {
        if worker >= self.peers.len() {
            outbox.clear();
            return;
        }
        if self.lanes.between(self.here, worker).append(outbox) {
            if let Err(e) = self.peers[worker].1.wake() {
                tracing::warn!(worker, "can't wake worker: {e}");
            }
        }
    }

    /// Hands what the lanes into this worker hold to `f`, one lane at a time, in order, in
    /// slices of at most `MEDIA_SLICE` items (the caller sends what each produced before the
    /// next: a backlog must not queue up per viewer), and at most `max_slices` slices. True
    /// when items are left for the next call: the lanes' writers will not wake this loop for
    /// them, so the caller must come back.
    pub fn take_media(
        &mut self,
        max_slices: usize,
        mut f: impl FnMut(std::vec::Drain<'_, MirrorItem>),
    ) -> bool {
        let mut lanes = self.lanes.into_worker(self.here);
        let incoming = &mut self.incoming;
        let mut slices = 0;
        loop {
            while !incoming.is_empty() {
                if slices == max_slices {
                    return true;
                }
                let n = incoming.len().min(MEDIA_SLICE);
                f(incoming.drain(..n));
                slices += 1;
            }
            match lanes.next() {
                Some(lane) => lane.take(incoming),
                None => return false,
            }
        }
    }

    /// The next message for this worker: (from which worker, what).
    pub fn try_recv(&self) -> Option<Letter> {
        self.inbox.try_recv().ok()
    }
}
