//! Which worker pulls which camera, when camgate runs one gateway per core.
//!
//! Every worker has its own event loop and `Gateway`. A camera URL is pulled by exactly one
//! of them (one RTSP connection per URL, as with one worker), and a viewer of that URL is
//! served by that worker, whichever worker its signaling session lives on: the session's
//! gateway forwards the `playStream` there (see `gateway::Forward`).
//!
//! A viewer is served by the camera's worker unless that worker serves clearly more viewers
//! than another: then by the least-loaded worker, from a mirror of the camera's packets (see
//! `mirror`), so the viewers of one busy camera spread over every core.
//!
//! One `PlacementTable` is shared by all workers. Core holds no locks: the event loop keeps
//! the table behind one (`camgate_io::workers`) and hands each gateway a `Placement`, through
//! which it sees the table as its worker (`WorkerTable`). It is touched when a viewer starts or
//! stops, when a camera connection opens or closes, and a few times a second to publish each
//! worker's stream list for the APIs: never per packet.
//!
//! The table, updated before a REST call answers, says which cameras exist; the published lists
//! (up to `PUBLISH_INTERVAL` old) only add their details. So the APIs read their own writes: a
//! stream is listed from its `startup` on, and not after its `terminate`, however old the owner's
//! last list is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::gateway::{GatewayStats, StreamId, StreamInfo};

/// How often each worker publishes its streams and counters for the others' APIs.
pub const PUBLISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Which worker pulls which camera, and what each worker last published (see the module
/// docs). Pure data: the event loop decides how workers share it.
pub struct PlacementTable {
    workers: usize,
    /// Camera URL (the sharing key, credentials included) → where it is pulled. Ordered, so
    /// the APIs list not-yet-published streams in the same order every time.
    streams: BTreeMap<String, Placed>,
    /// Viewers served by each worker: their sum is held to the server-wide `max_viewers`, and
    /// the spread decides where a new viewer goes.
    served: Vec<usize>,
    /// What each worker published last.
    published: Vec<Published>,
    /// The ticket of the next new entry.
    next_ticket: u64,
}

struct Placed {
    worker: usize,
    /// Viewers of this camera on all workers (mirrors included), for `max_viewers_per_stream`.
    viewers: usize,
    /// Started by REST `startup`: shown as pinned until the owner publishes it.
    pinned: bool,
    /// The URL with its password masked, for APIs before the owner has published.
    redacted: String,
    /// The owner's stream, once it opened one: only that stream's published entry is shown,
    /// and only its close removes the entry (not the close of a terminated predecessor).
    stream: Option<StreamId>,
    /// Told apart from an earlier entry of the same URL: a forwarded `startup` that a
    /// `terminate` overtook must not claim the entry of the next `startup`.
    ticket: u64,
}

#[derive(Default, Clone)]
struct Published {
    streams: Vec<StreamInfo>,
    stats: GatewayStats,
}

/// Why `place` refused a new camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStreams;

/// Why `place_viewer` refused a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerRefused {
    /// The camera is not pulled, and `max_streams` cameras are.
    TooManyStreams,
    /// `max_viewers` viewers are served in all.
    TooManyViewers,
    /// `max_viewers_per_stream` viewers watch this camera.
    TooManyViewersOfStream,
}

/// The table as the event loop shares it between workers (behind a lock): core only asks it
/// to run a closure on the table.
pub trait SharedTable: Send + Sync {
    /// Runs `f` with the table to itself.
    fn with(&self, f: &mut dyn FnMut(&mut PlacementTable));
}

/// One worker's handle on the shared table: the gateway's `GatewayConfig::placement`.
#[derive(Clone)]
pub struct Placement {
    here: usize,
    shared: Arc<dyn SharedTable>,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("here", &self.here)
            .finish()
    }
}

impl Placement {
    /// Worker `here`'s handle on `shared`.
    pub fn new(here: usize, shared: Arc<dyn SharedTable>) -> Self {
        Self { here, shared }
    }

    /// This worker's number.
    pub fn here(&self) -> usize {
        self.here
    }

    /// Runs `f` on the table as this worker sees it.
    pub fn with<R>(&self, f: impl FnOnce(WorkerTable<'_>) -> R) -> R {
        let (mut f, mut out) = (Some(f), None);
        self.shared.with(&mut |table| {
            if let Some(f) = f.take() {
                out = Some(f(table.at(self.here)));
            }
        });
        out.expect("SharedTable::with runs its closure")
    }
}

impl PlacementTable {
    /// The table of `workers` workers, with no camera placed.
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers,
            streams: BTreeMap::new(),
            served: vec![0; workers],
            published: vec![Published::default(); workers],
            next_ticket: 0,
        }
    }

    /// The table as worker `here` uses it.
    pub fn at(&mut self, here: usize) -> WorkerTable<'_> {
        WorkerTable { table: self, here }
    }
}

/// The table as one worker uses it (for one call): "here" in its methods is that worker.
pub struct WorkerTable<'a> {
    table: &'a mut PlacementTable,
    here: usize,
}

impl WorkerTable<'_> {
    /// The worker that pulls `url`. A URL nobody pulls yet goes to the worker with the fewest
    /// cameras, unless `max_streams` cameras are pulled already.
    pub fn place(
        self,
        url: &str,
        redacted: &str,
        max_streams: usize,
    ) -> Result<usize, TooManyStreams> {
        place_in(self.table, self.here, url, redacted, max_streams)
    }

    /// Admits a viewer of `url` and picks the worker that serves it: the camera's (placed as
    /// by `place`), unless that worker serves more than `spread_after` viewers above the
    /// least-loaded worker, which then serves it from a mirror. The viewer counts for that
    /// worker and that camera from now on (`remove_viewer` there gives it back).
    pub fn place_viewer(
        self,
        url: &str,
        redacted: &str,
        limits: &ViewerLimits,
        spread_after: usize,
    ) -> Result<usize, ViewerRefused> {
        let t = &mut *self.table;
        if t.served.iter().sum::<usize>() >= limits.max_viewers {
            return Err(ViewerRefused::TooManyViewers);
        }
        if t.streams
            .get(url)
            .is_some_and(|p| p.viewers >= limits.max_viewers_per_stream)
        {
            return Err(ViewerRefused::TooManyViewersOfStream);
        }
        let origin = place_in(t, self.here, url, redacted, limits.max_streams)
            .map_err(|_| ViewerRefused::TooManyStreams)?;
        t.streams.get_mut(url).expect("just placed").viewers += 1;
        // Fewest viewers; among equals the camera's worker, then this one (fewer hops).
        let least = (0..t.workers)
            .min_by_key(|w| (t.served[*w], *w != origin, *w != self.here, *w))
            .unwrap_or(origin);
        let worker = if t.served[origin] > t.served[least] + spread_after {
            least
        } else {
            origin
        };
        t.served[worker] += 1;
        Ok(worker)
    }

    /// Like `place`, for REST `startup`: the worker and the entry's ticket (for `claim`);
    /// `Ok(None)` when the URL is already pinned.
    pub fn place_pinned(
        self,
        url: &str,
        redacted: &str,
        max_streams: usize,
    ) -> Result<Option<(usize, u64)>, TooManyStreams> {
        let t = &mut *self.table;
        let worker = place_in(t, self.here, url, redacted, max_streams)?;
        let p = t.streams.get_mut(url).expect("just placed");
        if p.pinned {
            return Ok(None);
        }
        p.pinned = true;
        Ok(Some((worker, p.ticket)))
    }

    /// Viewers of exactly this URL on all workers (mirrors included).
    pub fn viewers_of(self, url: &str) -> usize {
        self.table.streams.get(url).map_or(0, |p| p.viewers)
    }

    /// The worker pulling exactly this URL.
    pub fn worker_of(self, url: &str) -> Option<usize> {
        self.table.streams.get(url).map(|p| p.worker)
    }

    /// The worker pulling the stream with this URL (exact, or as masked), and its exact URL.
    pub fn find(self, url: &str) -> Option<(usize, String)> {
        let t = &*self.table;
        find_in(t, url).map(|k| (t.streams[&k].worker, k))
    }

    /// REST `terminate`: forgets the stream with this URL (exact, or as masked) at once, so
    /// every API call from now on misses it while its worker closes it; that worker and the
    /// exact URL.
    pub fn terminate(self, url: &str) -> Option<(usize, String)> {
        let t = &mut *self.table;
        let key = find_in(t, url)?;
        t.streams.remove(&key).map(|p| (p.worker, key))
    }

    /// This worker opened camera connection `stream` for a viewer of `url`. Keeps the entry
    /// if a race let two workers open one; the later one simply serves its own viewers.
    pub fn opened(self, url: &str, redacted: &str, stream: StreamId) {
        let here = self.here;
        let t = &mut *self.table;
        let ticket = t.next_ticket;
        let p = t.streams.entry(url.to_owned()).or_insert_with(|| Placed {
            worker: here,
            viewers: 0,
            pinned: false,
            redacted: redacted.to_owned(),
            stream: None,
            ticket,
        });
        if p.worker == here {
            p.stream = Some(stream);
        }
        if p.ticket == ticket {
            t.next_ticket += 1;
        }
    }

    /// Ties the entry `ticket` of `url` (from `place_pinned`) to this worker's connection
    /// `stream`, opened or pinned for that `startup`. False when the entry is gone or newer:
    /// a `terminate` came since.
    pub fn claim(self, url: &str, ticket: u64, stream: StreamId) -> bool {
        match self.table.streams.get_mut(url) {
            Some(p) if p.ticket == ticket && p.worker == self.here => {
                p.stream = Some(stream);
                true
            }
            _ => false,
        }
    }

    /// This worker closed its camera connection `stream` for `url`. Also drops an entry placed
    /// here for a viewer that never opened a connection of its own (it joined this one).
    pub fn closed(self, url: &str, stream: StreamId) {
        let here = self.here;
        let t = &mut *self.table;
        let ours = |p: &Placed| match p.stream {
            Some(s) => s == stream,
            None => p.worker == here && !p.pinned,
        };
        if t.streams.get(url).is_some_and(ours) {
            t.streams.remove(url);
        }
    }

    /// Counts a viewer of `url` in on this worker, unless `max` are served in all already.
    pub fn add_viewer(self, url: &str, max: usize) -> bool {
        let here = self.here;
        let t = &mut *self.table;
        if t.served.iter().sum::<usize>() >= max {
            return false;
        }
        t.served[here] += 1;
        if let Some(p) = t.streams.get_mut(url) {
            p.viewers += 1;
        }
        true
    }

    /// A viewer of `url` on this worker is gone (or was refused after it was counted).
    pub fn remove_viewer(self, url: &str) {
        let here = self.here;
        let t = &mut *self.table;
        t.served[here] = t.served[here].saturating_sub(1);
        if let Some(p) = t.streams.get_mut(url) {
            p.viewers = p.viewers.saturating_sub(1);
        }
    }

    /// This worker's streams and counters, for the others' APIs.
    pub fn publish(self, streams: Vec<StreamInfo>, stats: GatewayStats) {
        let here = self.here;
        self.table.published[here] = Published { streams, stats };
    }

    /// Streams and counters of the other workers: what they published, plus streams placed
    /// on them that they have not published yet (shown as pending).
    pub fn others(self) -> (Vec<StreamInfo>, GatewayStats) {
        let t = &*self.table;
        // A published stream the table no longer holds was terminated (or closed) since.
        let live: BTreeSet<StreamId> = t.streams.values().filter_map(|p| p.stream).collect();
        let mut streams = Vec::new();
        let mut stats = GatewayStats::default();
        for (w, p) in t.published.iter().enumerate() {
            if w == self.here {
                continue;
            }
            streams.extend(p.streams.iter().filter(|s| live.contains(&s.id)).cloned());
            stats.add(&p.stats);
        }
        for p in t.streams.values() {
            let shown = |id| streams.iter().any(|s| s.id == id && !s.mirror);
            if p.worker != self.here && !p.stream.is_some_and(shown) {
                streams.push(StreamInfo {
                    id: StreamId(0),
                    url: p.redacted.clone(),
                    playing: false,
                    viewers: 0,
                    pinned: p.pinned,
                    reconnecting: false,
                    dropped_tracks: Vec::new(),
                    info: String::new(),
                    mirror: false,
                    video: None,
                });
            }
        }
        (streams, stats)
    }
}

/// The limits `Placement::place_viewer` applies (see `GatewayConfig`).
#[derive(Debug, Clone, Copy)]
pub struct ViewerLimits {
    /// Cameras pulled at once.
    pub max_streams: usize,
    /// Viewers in all.
    pub max_viewers: usize,
    /// Viewers of one camera.
    pub max_viewers_per_stream: usize,
}

/// The key of the stream with this URL, exact or as masked.
fn find_in(t: &PlacementTable, url: &str) -> Option<String> {
    if t.streams.contains_key(url) {
        return Some(url.to_owned());
    }
    t.streams
        .iter()
        .find(|(_, p)| p.redacted == url)
        .map(|(k, _)| k.clone())
}

/// `WorkerTable::place`.
fn place_in(
    t: &mut PlacementTable,
    here: usize,
    url: &str,
    redacted: &str,
    max_streams: usize,
) -> Result<usize, TooManyStreams> {
    if let Some(p) = t.streams.get(url) {
        return Ok(p.worker);
    }
    if t.streams.len() >= max_streams {
        return Err(TooManyStreams);
    }
    let mut load = vec![0usize; t.workers];
    for p in t.streams.values() {
        load[p.worker] += 1;
    }
    // Fewest cameras; among equals this worker (no hop), then the lowest number.
    let worker = (0..t.workers)
        .min_by_key(|w| (load[*w], *w != here, *w))
        .unwrap_or(here);
    let ticket = t.next_ticket;
    t.next_ticket += 1;
    t.streams.insert(
        url.to_owned(),
        Placed {
            worker,
            viewers: 0,
            pinned: false,
            redacted: redacted.to_owned(),
            stream: None,
            ticket,
        },
    );
    Ok(worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_cameras_go_to_the_least_loaded_worker_and_stay_there() {
        let mut t = PlacementTable::new(3);
        assert_eq!(t.at(1).place("rtsp://a/1", "rtsp://a/1", 10), Ok(1));
        assert_eq!(t.at(1).place("rtsp://a/2", "rtsp://a/2", 10), Ok(0));
        assert_eq!(t.at(0).place("rtsp://a/3", "rtsp://a/3", 10), Ok(2));
        // Known URLs stay where they are, whoever asks.
        assert_eq!(t.at(2).place("rtsp://a/1", "rtsp://a/1", 10), Ok(1));
        assert_eq!(t.at(0).place("rtsp://a/4", "x", 3), Err(TooManyStreams));
        // Only the close of the owner's connection removes the entry.
        let id = StreamId((1 << 40) + 1);
        t.at(1).opened("rtsp://a/1", "rtsp://a/1", id);
        t.at(0).closed("rtsp://a/1", StreamId(1));
        t.at(1).closed("rtsp://a/1", StreamId(id.0 + 1));
        assert_eq!(t.at(0).find("rtsp://a/1"), Some((1, "rtsp://a/1".into())));
        t.at(1).closed("rtsp://a/1", id);
        assert_eq!(t.at(0).find("rtsp://a/1"), None);
    }

    fn info(id: StreamId, url: &str) -> StreamInfo {
        StreamInfo {
            id,
            url: url.to_owned(),
            playing: true,
            viewers: 0,
            pinned: true,
            reconnecting: false,
            dropped_tracks: Vec::new(),
            info: String::new(),
            mirror: false,
            video: None,
        }
    }

    #[test]
    fn the_apis_read_their_own_writes_whatever_the_owner_published() {
        let mut t = PlacementTable::new(2);
        let (url, masked) = ("rtsp://u:p%40ss@cam/x", "rtsp://u:***@cam/x");
        // Worker 0 places it on worker 1, which opens and publishes it.
        t.at(0).place("rtsp://other", "rtsp://other", 5).unwrap();
        let Ok(Some((1, ticket))) = t.at(0).place_pinned(url, masked, 5) else {
            panic!("placed on worker 1")
        };
        let first = StreamId((1 << 40) + 1);
        assert!(t.at(1).claim(url, ticket, first));
        t.at(1)
            .publish(vec![info(first, masked)], GatewayStats::default());
        assert_eq!(t.at(0).others().0.len(), 1);
        // Terminated by its masked URL: gone for worker 0 at once, stale list or not.
        assert_eq!(t.at(0).terminate(masked), Some((1, url.to_owned())));
        assert!(t.at(0).others().0.is_empty());
        assert_eq!(t.at(0).terminate(url), None);
        // Started again before worker 1 closed the first connection: listed, as pending.
        let Ok(Some((1, again))) = t.at(0).place_pinned(url, masked, 5) else {
            panic!("placed on worker 1")
        };
        let listed = t.at(0).others().0;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].pinned && !listed[0].playing && listed[0].url == masked);
        // The first connection's close, and a late claim for the first startup, leave the
        // new entry alone.
        t.at(1).closed(url, first);
        assert!(!t.at(1).claim(url, ticket, StreamId(first.0 + 1)));
        assert_eq!(t.at(0).others().0.len(), 1);
        let second = StreamId(first.0 + 2);
        assert!(t.at(1).claim(url, again, second));
        t.at(1)
            .publish(vec![info(second, masked)], GatewayStats::default());
        let listed = t.at(0).others().0;
        assert_eq!((listed.len(), listed[0].id), (1, second));
        t.at(1).closed(url, second);
        assert!(t.at(0).others().0.is_empty());
    }

    #[test]
    fn pinning_twice_is_refused_and_masked_urls_are_found() {
        let mut t = PlacementTable::new(2);
        let url = "rtsp://u:pw@cam/x";
        assert_eq!(
            t.at(0).place_pinned(url, "rtsp://u:***@cam/x", 5),
            Ok(Some((0, 0)))
        );
        assert_eq!(t.at(1).place_pinned(url, "rtsp://u:***@cam/x", 5), Ok(None));
        assert_eq!(t.at(1).find("rtsp://u:***@cam/x"), Some((0, url.into())));
        let (others, _) = t.at(1).others();
        assert_eq!(others.len(), 1);
        assert!(others[0].pinned && others[0].url == "rtsp://u:***@cam/x");
        assert!(
            t.at(0).others().0.is_empty(),
            "its own streams are not 'others'"
        );
    }

    #[test]
    fn the_viewer_limit_counts_all_workers() {
        let mut t = PlacementTable::new(2);
        let url = "rtsp://a/1";
        assert!(t.at(0).add_viewer(url, 2));
        assert!(t.at(1).add_viewer(url, 2));
        assert!(!t.at(0).add_viewer(url, 2));
        t.at(1).remove_viewer(url);
        assert!(t.at(0).add_viewer(url, 2));
        let limits = ViewerLimits {
            max_streams: 10,
            max_viewers: 2,
            max_viewers_per_stream: 10,
        };
        assert_eq!(
            t.at(1).place_viewer(url, url, &limits, 0),
            Err(ViewerRefused::TooManyViewers)
        );
    }

    #[test]
    fn viewers_of_a_busy_camera_spread_to_the_least_loaded_worker() {
        let mut t = PlacementTable::new(3);
        let url = "rtsp://cam/busy";
        let limits = ViewerLimits {
            max_streams: 1,
            max_viewers: 100,
            max_viewers_per_stream: 10,
        };
        // Within the margin (2) the camera's worker serves; past it the least-loaded does.
        let served: Vec<usize> = (0..9)
            .map(|_| t.at(1).place_viewer(url, url, &limits, 2).unwrap())
            .collect();
        assert_eq!(served, [1, 1, 1, 0, 2, 1, 0, 2, 1]);
        assert_eq!(
            t.at(0).find(url),
            Some((1, url.into())),
            "pulled by worker 1"
        );
        // Viewers leaving worker 1 bring new viewers back to it.
        t.at(1).remove_viewer(url);
        t.at(1).remove_viewer(url);
        t.at(1).remove_viewer(url);
        assert_eq!(t.at(0).place_viewer(url, url, &limits, 2), Ok(1));
        assert_eq!(
            t.at(0).place_viewer("rtsp://cam/other", "x", &limits, 2),
            Err(ViewerRefused::TooManyStreams)
        );
        // The per-stream limit (10) counts the camera's viewers on every worker: 7 now.
        let more: Vec<_> = (0..4)
            .map(|_| t.at(2).place_viewer(url, url, &limits, 2))
            .collect();
        assert_eq!(
            more,
            [
                Ok(1),
                Ok(1),
                Ok(2),
                Err(ViewerRefused::TooManyViewersOfStream)
            ]
        );
    }
}
