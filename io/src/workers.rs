//! The links between worker event loops, when camgate runs one loop per core.
//!
//! A gateway hands another worker's gateway a `Forward` (a viewer's `playStream` for a camera
//! that worker pulls, the statuses going back, REST startup/terminate). The message goes
//! through that worker's channel, and its loop is woken through its mio `Waker`. Media of a
//! camera mirrored to another worker goes through the media lanes of `camgate_core::mirror`
//! instead; this link only wakes the mirror's loop.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use camgate_core::hub::Forward;
use mio::Waker;

/// What goes through a worker's inbox: (from which worker, what).
type Letter = (usize, Forward);

/// One worker's ends of the links: its inbox, and the way to every worker's inbox.
pub struct WorkerLink {
    here: usize,
    peers: Vec<(Sender<Letter>, Arc<Waker>)>,
    inbox: Receiver<Letter>,
}

impl WorkerLink {
    /// Links for loops whose wakers are given in worker order; the i-th link is worker i's.
    pub fn link_all(wakers: Vec<Arc<Waker>>) -> Vec<WorkerLink> {
        let (senders, inboxes): (Vec<_>, Vec<_>) = wakers.iter().map(|_| channel()).unzip();
        let peers: Vec<_> = senders.into_iter().zip(wakers).collect();
        inboxes
            .into_iter()
            .enumerate()
            .map(|(here, inbox)| WorkerLink {
                here,
                peers: peers.clone(),
                inbox,
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

    /// Wakes `worker`'s loop (its media lane from here has packets).
    pub fn wake(&self, worker: usize) {
        if let Some((_, waker)) = self.peers.get(worker) {
            if let Err(e) = waker.wake() {
                tracing::warn!(worker, "can't wake worker: {e}");
            }
        }
    }

    /// The next message for this worker: (from which worker, what).
    pub fn try_recv(&self) -> Option<Letter> {
        self.inbox.try_recv().ok()
    }
}
