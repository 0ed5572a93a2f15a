//! ICE over TCP (RFC 6544): the RFC 4571 framing of STUN, DTLS, SRTP and SRTCP packets on a
//! TCP connection, each packet preceded by its length in two bytes (big-endian).
//!
//! Sans-IO: the io loop hands `Deframer::feed` whatever a read returned (cut anywhere) and
//! takes frames out; it queues outgoing packets with `SendQueue::push` and writes
//! `SendQueue::unsent`. Both are bounded, so a peer can neither make camgate hold a large
//! frame nor make its send queue grow without end.

/// The largest frame camgate accepts from a browser. Browsers keep every ICE-TCP packet
/// within a datagram's size (STUN checks, DTLS flights cut to the path MTU, RTCP), so a longer
/// length is garbage, not a packet.
pub const MAX_FRAME: usize = 4096;

/// Bytes a viewer's TCP connection may have queued and not yet taken by the socket: about
/// 0.4 s of a 4 Mbit/s stream. Past it, packets are dropped (whole frames: the framing stays
/// intact) and the viewer waits for the next keyframe.
pub const SEND_QUEUE_LIMIT: usize = 256 * 1024;

/// An emptied send queue that grew past this (a GOP sent at once to a viewer that joined, an
/// unusually large keyframe) gives the rest back: steady keyframe bursts of a few Mbit/s stream
/// fit in it, so it is rarely reallocated, and an idle viewer does not keep a burst's worth.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Why a connection's byte stream is not RFC 4571 frames of packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A length above `MAX_FRAME`.
    Oversized(usize),
    /// A zero length: no packet is empty.
    Empty,
    /// The receiver of a frame refused it (e.g. a first packet that is not a STUN check for
    /// one of our viewers).
    Rejected,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oversized(len) => write!(f, "frame of {len} bytes (most {MAX_FRAME})"),
            Self::Empty => write!(f, "empty frame"),
            Self::Rejected => write!(f, "frame refused"),
        }
    }
}

/// Splits a TCP byte stream into frames. Frames that lie whole in one read are handed out
/// borrowed from it; only a frame cut by the end of a read is copied (into a buffer of at most
/// `MAX_FRAME + 2` bytes).
#[derive(Debug, Default)]
pub struct Deframer {
    /// The start (length bytes included) of a frame the last read cut.
    partial: Vec<u8>,
}

fn frame_len(header: [u8; 2]) -> Result<usize, FrameError> {
    match usize::from(u16::from_be_bytes(header)) {
        0 => Err(FrameError::Empty),
        n if n > MAX_FRAME => Err(FrameError::Oversized(n)),
        n => Ok(n),
    }
}

impl Deframer {
    /// A deframer at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the bytes of one read and calls `on_frame` with every frame completed by them, in
    /// order; `on_frame` returns false to refuse a frame. After an error the connection must be
    /// closed: the stream is out of step.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on_frame: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.partial.is_empty() && data.len() >= 2 {
                let len = frame_len([data[0], data[1]])?;
                if let Some(frame) = data.get(2..2 + len) {
                    if !on_frame(frame) {
                        return Err(FrameError::Rejected);
                    }
                    data = &data[2 + len..];
                    continue;
                }
            }
            // A frame the read does not hold whole: gather it.
            if self.partial.len() < 2 {
                let take = (2 - self.partial.len()).min(data.len());
                self.partial.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.partial.len() < 2 {
                    break;
                }
            }
            let len = frame_len([self.partial[0], self.partial[1]])?;
            let take = (2 + len - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == 2 + len {
                let whole = on_frame(&self.partial[2..]);
                self.partial.clear();
                if !whole {
                    return Err(FrameError::Rejected);
                }
            }
        }
        Ok(())
    }

    /// Bytes of an unfinished frame are held: a close now cuts a packet.
    pub fn mid_frame(&self) -> bool {
        !self.partial.is_empty()
    }
}

/// A connection's outgoing frames, bounded by `limit` bytes. The buffer's capacity is reused:
/// no allocation per packet once it has grown to its working size.
#[derive(Debug)]
pub struct SendQueue {
    buf: Vec<u8>,
    /// Bytes of `buf` already written to the socket.
    sent: usize,
    limit: usize,
}

impl Default for SendQueue {
    fn default() -> Self {
        Self::new(SEND_QUEUE_LIMIT)
    }
}

impl SendQueue {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            sent: 0,
            limit,
        }
    }

    /// Queues `packet` as one frame; false (and nothing queued) when it would take the queue
    /// past its limit, or is too long for a frame.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        if self.len() + 2 + packet.len() > self.limit {
            return false;
        }
        if self.sent > 0 && self.sent >= self.buf.len() / 2 {
            // Written bytes make up most of the buffer: drop them rather than grow it.
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(packet);
        true
    }

    /// What the socket has still to take.
    pub fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// The socket took `n` bytes of `unsent`.
    pub fn consumed(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.buf.len());
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        }
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut q = SendQueue::new(usize::MAX);
        for p in packets {
            assert!(q.push(p));
        }
        q.unsent().to_vec()
    }

    fn feed_all(d: &mut Deframer, data: &[u8], got: &mut Vec<Vec<u8>>) -> Result<(), FrameError> {
        d.feed(data, |f| {
            got.push(f.to_vec());
            true
        })
    }

    #[test]
    fn a_stream_split_at_every_byte_gives_the_same_frames() {
        let packets: [&[u8]; 3] = [&[1, 2, 3], &[0x80; 1200], &[9]];
        let stream = framed(&packets);
        for cut in 0..=stream.len() {
            let mut d = Deframer::new();
            let mut got = Vec::new();
            feed_all(&mut d, &stream[..cut], &mut got).unwrap();
            feed_all(&mut d, &stream[cut..], &mut got).unwrap();
            assert_eq!(got, packets.map(<[u8]>::to_vec), "cut at {cut}");
            assert!(!d.mid_frame());
        }
        // One byte per read.
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for b in &stream {
            feed_all(&mut d, std::slice::from_ref(b), &mut got).unwrap();
        }
        assert_eq!(got, packets.map(<[u8]>::to_vec));
    }

    #[test]
    fn two_frames_in_one_read_are_both_taken_without_copying() {
        let stream = framed(&[&[1; 10], &[2; 20]]);
        let mut d = Deframer::new();
        let mut ptrs = Vec::new();
        d.feed(&stream, |f| {
            ptrs.push((f.as_ptr(), f.len()));
            true
        })
        .unwrap();
        // Borrowed from the read buffer itself.
        assert_eq!(
            ptrs,
            [(stream[2..].as_ptr(), 10), (stream[14..].as_ptr(), 20)]
        );
        assert!(d.partial.capacity() == 0, "nothing was copied");
    }

    #[test]
    fn an_oversized_or_empty_length_is_an_error() {
        let mut d = Deframer::new();
        let err = d.feed(&[0xff, 0xff, 1, 2, 3], |_| true);
        assert_eq!(err, Err(FrameError::Oversized(65535)));
        // Also when the length arrives cut in two.
        let mut d = Deframer::new();
        assert_eq!(d.feed(&[0x10], |_| true), Ok(()));
        assert_eq!(d.feed(&[0x01], |_| true), Err(FrameError::Oversized(4097)));
        let mut d = Deframer::new();
        assert_eq!(d.feed(&[0, 0, 1], |_| true), Err(FrameError::Empty));
        // The largest allowed frame passes.
        let mut d = Deframer::new();
        let mut got = Vec::new();
        feed_all(&mut d, &framed(&[&[7; MAX_FRAME]]), &mut got).unwrap();
        assert_eq!(got[0].len(), MAX_FRAME);
    }

    #[test]
    fn a_refused_frame_stops_the_stream() {
        let stream = framed(&[&[1], &[2], &[3]]);
        let mut seen = 0;
        let mut d = Deframer::new();
        let r = d.feed(&stream, |f| {
            seen += 1;
            f != [2]
        });
        assert_eq!((r, seen), (Err(FrameError::Rejected), 2));
    }

    #[test]
    fn a_close_mid_frame_is_seen_and_gives_no_frame() {
        let stream = framed(&[&[5; 100]]);
        for cut in 1..stream.len() {
            let mut d = Deframer::new();
            let mut got = Vec::new();
            feed_all(&mut d, &stream[..cut], &mut got).unwrap();
            assert!(got.is_empty(), "cut at {cut}");
            assert!(d.mid_frame(), "cut at {cut}");
        }
    }

    #[test]
    fn the_send_queue_is_bounded_and_keeps_whole_frames() {
        let mut q = SendQueue::new(100);
        assert!(q.push(&[1; 48]));
        assert!(q.push(&[2; 48]));
        assert!(!q.push(&[3; 1]), "past the limit: dropped whole");
        assert_eq!(q.len(), 100);
        // The socket takes part of it; what is left is still whole frames.
        q.consumed(30);
        assert!(q.push(&[4; 20]));
        let mut d = Deframer::new();
        let mut got = Vec::new();
        // Complete the first frame's first 30 bytes the socket took.
        let mut all = framed(&[&[1; 48]])[..30].to_vec();
        all.extend_from_slice(q.unsent());
        feed_all(&mut d, &all, &mut got).unwrap();
        assert_eq!(got, [vec![1; 48], vec![2; 48], vec![4; 20]]);
        q.consumed(q.len());
        assert!(q.is_empty());
        // Memory stays at the limit's size however long it runs.
        for i in 0..10_000u32 {
            assert!(q.push(&[i as u8; 40]));
            q.consumed(25);
            if q.len() > 60 {
                q.consumed(q.len());
            }
        }
        assert!(q.buf.capacity() <= 256, "capacity {}", q.buf.capacity());
        assert!(!q.push(&vec![0; 70_000]), "longer than a frame can say");
        // A burst grows it; once sent, it gives back what is over KEEP_CAPACITY.
        let mut q = SendQueue::new(SEND_QUEUE_LIMIT);
        for _ in 0..200 {
            assert!(q.push(&[1; 1200]));
        }
        assert!(q.buf.capacity() > KEEP_CAPACITY);
        q.consumed(q.len());
        assert!(q.buf.capacity() <= KEEP_CAPACITY, "{}", q.buf.capacity());
    }
}
