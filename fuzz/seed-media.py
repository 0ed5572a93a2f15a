#!/usr/bin/env python3
"""Writes the committed seeds of the media targets (fuzz/seeds/<target>/) from the RTP captures
in core/tests/data/ (vp8, audio, h264) plus a few hand-built inputs (RTCP, reorder, camera UDP).
Idempotent; only the standard library. Seeds are kept small (a few KB each): the fuzzer grows
its own corpus from them. Run: python3 fuzz/seed-media.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "core", "tests", "data")
SEEDS = os.path.join(HERE, "seeds")


def packets(path):
    """RTP packets of an RFC 4571-framed capture: (marker, seq, ts, ssrc, payload)."""
    raw = open(path, "rb").read()
    i = 0
    while i + 2 <= len(raw):
        (n,) = struct.unpack(">H", raw[i:i + 2])
        p = raw[i + 2:i + 2 + n]
        i += 2 + n
        cc = p[0] & 0x0F
        off = 12 + 4 * cc
        if p[0] & 0x10:
            (words,) = struct.unpack(">H", p[off + 2:off + 4])
            off += 4 + 4 * words
        end = len(p) - (p[-1] if p[0] & 0x20 else 0)
        seq, ts, ssrc = struct.unpack(">HII", p[2:12])
        yield bool(p[1] & 0x80), seq, ts, ssrc, p[off:end]


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def packet_stream(header, pkts, limit):
    """testkit/src/fuzz/mod.rs `packet_stream`: header, (flags, len, payload[:255])*."""
    out = bytearray([header])
    last_ts = None
    for marker, _seq, ts, _ssrc, payload in list(pkts)[:limit]:
        flags = int(marker) | (8 if last_ts is not None and ts != last_ts else 0)
        last_ts = ts
        payload = payload[:255]
        out += bytes([flags, len(payload)]) + payload
    return out


# vp8_relay: the start of both captures (keyframe first), payloads cut at 255 bytes.
write("vp8_relay", "vp8-320x240-pid15", packet_stream(0x3F, packets(f"{DATA}/vp8/vp8_320x240.rtp"), 24))
write("vp8_relay", "vp8-176x144-pid7", packet_stream(0x3F, packets(f"{DATA}/vp8/vp8_176x144_pid7.rtp"), 24))

# h265_relay: the test camera's stream (parameter-set APs, SEI, IDR FUs) with and without the
# sprops (header bit 6), max payload 66, and the B-frame stream's start at max payload 30.
write("h265_relay", "x265-zerolatency-fmtp", packet_stream(0x7F, packets(f"{DATA}/h265/x265_zerolatency.rtp"), 24))
write("h265_relay", "x265-zerolatency", packet_stream(0x3F, packets(f"{DATA}/h265/x265_zerolatency.rtp"), 24))
write("h265_relay", "x265-bframes", packet_stream(0x1B, packets(f"{DATA}/h265/x265_bframes.rtp"), 24))

# audio_transcode: selector (index into AUDIO_TRACKS, bit 4 = through AudioRelay), then
# (dt i16, len 11 bits, payload)* with dt the real timestamp step.
AUDIO = [
    (0, "aac_hbr_16000_mono", 12),
    (1, "aac_hbr_48000_stereo", 8),
    (2, "latm_44100_mono", 12),
    (3, "latm_16000_mono_frag", 16),
    (4, "speex_nb", 12),
    (4, "speex_nb_2frames", 8),
    (5, "speex_wb", 12),
    (6, "pcmu_8000", 6),
    (7, "pcma_8000", 6),
    (0x16, "pcmu_8000", 4),  # AudioRelay, G.711 passed through
    (0x10, "aac_hbr_16000_mono", 6),  # AudioRelay, transcoded
]
for sel, name, limit in AUDIO:
    out = bytearray([sel])
    last = None
    for marker, _seq, ts, _ssrc, payload in list(packets(f"{DATA}/audio/{name}.rtp"))[:limit]:
        dt = 0 if last is None else (ts - last) & 0xFFFFFFFF
        last = ts
        dt = dt if dt < 0x7FFF else 0x7FFF
        out += struct.pack(">hH", dt, len(payload) | (0x800 if marker else 0)) + payload
    write("audio_transcode", f"{name}-{sel:02x}", out)

# h264_slice: slice headers (bytes after the NAL header, or after the FU header of a start
# fragment) of the first I, P and B slices of the x264 captures.
seen = set()
for cap in ("x264_bframes2", "x264_bframes0"):
    for _m, _s, _t, _ssrc, p in packets(f"{DATA}/h264/{cap}.rtp"):
        t = p[0] & 0x1F
        if t == 28 and p[1] & 0x80:
            t, body = p[1] & 0x1F, p[2:]
        else:
            body = p[1:]
        if t not in (1, 5):
            continue
        head = body[:24]
        key = (t, head[:3])
        if key in seen or len(seen) >= 8:
            continue
        seen.add(key)
        write("h264_slice", f"{cap}-nal{t}-{len(seen)}", head)
write("h264_slice", "emulation-prevention", bytes([0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x01, 0x88]))

# rtcp: SR + SDES (a camera's usual compound), RR first, and a truncated SR.
sr = struct.pack(">BBHIIIIII", 0x80, 200, 6, 0x5E2A4B3C, 0xE9A1B2C3, 0x80000000, 2385553848, 100, 12345)
sdes = struct.pack(">BBHIBB", 0x81, 202, 2, 0x5E2A4B3C, 1, 2) + b"ab"
rr = struct.pack(">BBHI", 0x80, 201, 1, 0x11223344)
write("rtcp", "sr-sdes", sr + sdes)
write("rtcp", "rr-sr", rr + sr)
write("rtcp", "sr-truncated", sr[:20])
write("rtcp", "sr-short-length", struct.pack(">BBHI", 0x80, 200, 1, 7) + sr)

# rtp_reorder: header (depth index | window index << 3), then (op, x, y) records.
def reorder(header, ops):
    return bytes([header]) + b"".join(bytes(o) for o in ops)
write("rtp_reorder", "in-order", reorder(0x14, [(3 | 4 << 2, 1, i) for i in range(8)]))
write("rtp_reorder", "reordered", reorder(0x14, [(1, 0xFF, 0xFD)] + [(0, d & 0xFF, i) for i, d in enumerate([2, -1, 2, 1, -3, 4, 1, -2])]))
write("rtp_reorder", "gap-timeout", reorder(0x0B, [(1, 0, 10), (0, 5, 0), (2 | 63 << 2, 0, 0), (0, -2 & 0xFF, 0)]))
write("rtp_reorder", "restart-clear", reorder(0x13, [(1, 0x10, 0), (0, 2, 0), (1, 0x90, 0), (3, 0, 0), (1, 0x10, 5), (3, 1, 1)]))

# camera_udp: header (bit 0: no server_port, bit 1: source=), then (flags, len, datagram):
# video RTP from the camera's RTP port, out of order, audio RTP, an SR on the RTCP socket,
# RTCP muxed on the RTP port, a stranger's packet, then time passing.
def rtp(seq, ts, ssrc, payload, pt=96):
    return struct.pack(">BBHII", 0x80, pt, seq, ts, ssrc) + payload

def rec(flags, data):
    return bytes([flags, len(data)]) + data

video = lambda s: rtp(s, 3000 * s, 0x5E2A4B3C, bytes([0x41, 0x9A, s & 0xFF]))
udp = bytes([0])
udp += rec(0x00, video(100)) + rec(0x00, video(102)) + rec(0x20, video(101))
udp += rec(0x02, rtp(7, 160, 0x1F0E0D0C, b"\xd5" * 20, pt=8))
udp += rec(0x01 | 0x08, sr) + rec(0x00, sr + sdes) + rec(0x10, video(103))
udp += rec(0x00, video(104)) + rec(0xE0, video(105)) + rec(0xE0, b"")
write("camera_udp", "hikvision-like", udp)
write("camera_udp", "no-server-port", bytes([3]) + udp[1:])
