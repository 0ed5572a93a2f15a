use super::*;

impl Gateway {
    /// Queues `items` for worker `worker`'s mirrors (see `push_lane`).
    pub(super) fn push_mirror(
        &mut self,
        worker: usize,
        items: impl IntoIterator<Item = MirrorItem>,
    ) {
        push_lane(&mut self.mirror_out, &mut self.outputs, worker, items);
    }

    /// A mirror on worker `from` wants this camera's media; the camera is pulled if it isn't.
    pub(super) fn subscribe(&mut self, from: usize, url: String, mirror: StreamId, now: Instant) {
        let id = match self.by_url.get(&url).copied() {
            Some(id) => id,
            None => match self.pull(&url, now) {
                Ok(id) => id,
                Err(info) => return self.push_mirror(from, [MirrorItem::Failed { mirror, info }]),
            },
        };
        let s = self
            .streams
            .get_mut(&id)
            .expect("by_url points at live streams");
        if !s.source.is_origin() {
            // This worker itself mirrors that URL: the camera moved between workers just now.
            let info = "Failed by error: the stream moved between workers; play again".to_owned();
            return self.push_mirror(from, [MirrorItem::Failed { mirror, info }]);
        }
        s.mirrors.push((from, mirror));
        s.linger_until = None;
        tracing::info!(stream = id.0, url = %s.redacted, worker = from, "viewers on worker {from} mirror this camera");
        if let Some(info) = s.browser_refusal.clone() {
            // Served to RTSP players only: the mirror's browsers are refused, its players
            // ask for the camera's packets as usual.
            return self.push_mirror(from, [MirrorItem::BrowsersRefused { mirror, info }]);
        }
        let Some(described) = s.pipeline.described() else {
            return; // `Ready` follows when the camera plays
        };
        // What plays, then the current GOP so the mirror's first viewers start at once.
        let ready = MirrorItem::Ready {
            mirror,
            origin: id,
            described: Box::new(described),
        };
        let s = &*s;
        let gop = s.pipeline.gop_packets().iter().map(|p| MirrorItem::Video {
            mirror,
            packet: p.clone(),
            wall: s.pipeline.video_wallclock(p.rtp_time, now),
        });
        push_lane(
            &mut self.mirror_out,
            &mut self.outputs,
            from,
            std::iter::once(ready).chain(gop),
        );
    }

    /// Tells every mirror of a camera what plays (once it plays, and when that changes).
    pub(super) fn describe_to_mirrors(&mut self, id: StreamId) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        let Some(described) = s.pipeline.described() else {
            return;
        };
        for (worker, mirror) in s.mirrors.clone() {
            let described = Box::new(described.clone());
            self.push_mirror(
                worker,
                [MirrorItem::Ready {
                    mirror,
                    origin: id,
                    described,
                }],
            );
        }
    }

    /// The camera failed or was terminated: its mirrors fail their viewers with `info`.
    pub(super) fn fail_mirrors(&mut self, id: StreamId, info: &str) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        for (worker, mirror) in std::mem::take(&mut s.mirrors) {
            let info = info.to_owned();
            self.push_mirror(worker, [MirrorItem::Failed { mirror, info }]);
        }
    }

    /// Media and news from the cameras other workers pull, for this worker's mirrors: what
    /// another worker's gateway queued for this one (see `mirror_outbox`), in its order. Takes
    /// items until there are none or datagrams for UDP players came due (at least one item a
    /// call, as `handle_rtsp_data` takes at least a piece): the driver then sends them
    /// (`send_player_datagrams`) and calls again with the rest.
    pub fn handle_mirrored(&mut self, now: Instant, items: &mut impl Iterator<Item = MirrorItem>) {
        self.advance(now);
        let mut touched = None;
        for item in items {
            if let Some(mirror) = self.handle_mirror_item(item, now) {
                // Items come in runs per stream: schedule each run's viewers once.
                if touched.is_some_and(|t| t != mirror) {
                    self.schedule_watchers(touched.take().expect("checked"), now);
                }
                touched = Some(mirror);
            }
            if self.player_udp.due() {
                break;
            }
        }
        if let Some(mirror) = touched {
            self.schedule_watchers(mirror, now);
        }
    }

    /// What this worker queued for worker `worker`'s mirrors since it was last emptied: the
    /// event loop moves it to that worker (`handle_mirrored` there) after a `Mirrored` output,
    /// leaving it empty. Its capacity stays, so the steady state allocates nothing.
    pub fn mirror_outbox(&mut self, worker: usize) -> &mut Vec<MirrorItem> {
        outbox(&mut self.mirror_out, worker)
    }

    /// One item from a camera's worker; the mirror stream if media was written to viewers.
    pub(super) fn handle_mirror_item(
        &mut self,
        item: MirrorItem,
        now: Instant,
    ) -> Option<StreamId> {
        let (mirror, input) = match item {
            MirrorItem::Video {
                mirror,
                packet,
                wall,
            } => (mirror, MediaIn::MirroredVideo { packet, wall }),
            MirrorItem::Audio {
                mirror,
                packet,
                wall,
                fallback,
            } => {
                let input = MediaIn::MirroredAudio {
                    packet,
                    wall,
                    fallback,
                };
                (mirror, input)
            }
            news => {
                self.handle_mirror_news(news, now);
                return None;
            }
        };
        let (Source::Mirror(_), pipeline, mut fan_out) = self.media_of(mirror, now)? else {
            return None;
        };
        pipeline.on_media(now, input, &mut fan_out);
        Some(mirror)
    }

    /// What the camera's worker tells a mirror besides media: what plays, a resync, a failure.
    fn handle_mirror_news(&mut self, news: MirrorItem, now: Instant) {
        match news {
            MirrorItem::Video { .. } | MirrorItem::Audio { .. } => {}
            MirrorItem::Ready {
                mirror,
                origin,
                described,
            } => {
                // Browsers can play it (again): the camera sends what they take.
                if let Some(s) = self.streams.get_mut(&mirror) {
                    s.browser_refusal = None;
                }
                let Some((Source::Mirror(m), pipeline, mut fan_out)) = self.media_of(mirror, now)
                else {
                    return;
                };
                m.origin_stream = Some(origin);
                match pipeline.describe(*described) {
                    None => self.answer_pending(mirror, now),
                    Some(before) if before.info != pipeline.info() => {
                        fan_out.playing_again(&pipeline.info())
                    }
                    Some(_) => {}
                }
            }
            MirrorItem::Raw {
                mirror,
                track,
                rtcp,
                packet,
            } => {
                let data = &packet[..];
                self.raw_to_players(mirror, now, &MediaPacket { track, rtcp, data });
            }
            MirrorItem::Tracks { mirror, tracks } => self.mirror_tracks(mirror, now, tracks),
            MirrorItem::Resync { mirror } => {
                if let Some(s) = self.streams.get_mut(&mirror) {
                    s.pipeline.clear_gop();
                    s.raw_gop.clear();
                    self.resync_viewers(mirror);
                }
            }
            MirrorItem::BrowsersRefused { mirror, info } => {
                self.refuse_browsers(mirror, now, &info)
            }
            MirrorItem::Failed { mirror, info } => self.fail_stream(mirror, now, &info),
        }
    }

    /// A viewer needs the Opus fallback of the camera's G.711 (see `AudioRelay`).
    pub(super) fn enable_opus_fallback(&mut self, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match &mut s.source {
            Source::Camera(_) | Source::Demo(_) => {
                let Some(outcome) = s.pipeline.enable_opus_fallback() else {
                    return;
                };
                match outcome {
                    Ok(audio) => tracing::info!(stream = id.0, "audio: {audio}"),
                    Err(e) => tracing::warn!(stream = id.0, "no Opus fallback: {e}"),
                }
                self.describe_to_mirrors(id);
            }
            Source::Mirror(m) => {
                // The camera's worker transcodes, once for all workers.
                if !m.fallback_asked {
                    m.fallback_asked = true;
                    let forward = Forward::OpusFallback { url: s.url.clone() };
                    self.outputs.push_back(GatewayOutput::Forward {
                        worker: m.origin,
                        forward,
                    });
                }
            }
        }
    }
}
