#!/usr/bin/python3
"""A non-browser WebRTC receiver for camgate's tests: GStreamer's webrtcbin.

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice,
gstreamer1.0-plugins-bad, gstreamer1.0-libav for avdec_h264/avdec_h265):

    /usr/bin/python3 tests/webrtc_peer.py --whep http://127.0.0.1:8081/whep/rtsp%3A%2F%2F...
    /usr/bin/python3 tests/webrtc_peer.py --ws ws://127.0.0.1:8080 --stream rtsp://127.0.0.1:8555/cam
    ... --video h265 --frames 30 --timeout 20

Offers a recvonly video (H.264 or H.265) + recvonly audio (Opus, PCMU) transceiver, signals through
camgate's WHEP endpoint or the Flashphoner WebSocket protocol, decodes the video and prints one line

    RESULT {"frames": 30, "width": 640, "height": 360, "codec": "H264", "audio_buffers": 50, ...}

then exits 0 when at least --frames frames were decoded, 1 otherwise (2 for a refusal: WHEP 4xx or
FAILED on the WebSocket, with the reason in "refused"). DTLS uses webrtcbin's own default
certificate (RSA 2048 in GStreamer 1.22), as a real client of this kind would.
"""

import argparse
import base64
import ctypes
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

CODECS = {
    # name: (RTP encoding-name, depayloader ! parser ! decoder, extra caps fields)
    "h264": ("H264", "rtph264depay ! h264parse ! avdec_h264", ",packetization-mode=(string)1,profile-level-id=(string)42e01f"),
    # As Safari offers H.265 (RFC 7798 fmtp): Main profile, Main tier, up to level 4 (level-id 120).
    "h265": (
        "H265",
        "rtph265depay ! h265parse ! avdec_h265",
        ",profile-id=(string)1,tier-flag=(string)0,level-id=(string)120,tx-mode=(string)SRST",
    ),
}


def log(msg):
    print(f"[peer {time.monotonic():.3f}] {msg}", file=sys.stderr, flush=True)


def add_local_ip_address(webrtc, address):
    """webrtcbin's ice-agent "add-local-ip-address" action signal, through C.

    Debian 12 ships no GstWebRTCNice typelib: pygobject cannot wrap the agent object (reading the
    property logs G_IS_OBJECT criticals, emitting on it segfaults), so go through libgobject.
    """
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    ptr = int(re.search(r" at (0x[0-9a-f]+)\)>$", repr(webrtc)).group(1), 16)
    agent = ctypes.c_void_p()
    gobject.g_object_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
    gobject.g_object_get(ptr, b"ice-agent", ctypes.byref(agent), None)
    ok = ctypes.c_int(0)
    gobject.g_signal_emit_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    gobject.g_signal_emit_by_name(agent, b"add-local-ip-address", address.encode(), ctypes.byref(ok))
    gobject.g_object_unref.argtypes = [ctypes.c_void_p]
    gobject.g_object_unref(agent)
    if not ok.value:
        sys.exit(f"webrtcbin refused local address {address}")


class Peer:
    def __init__(self, video, local_address):
        self.video = video
        self.frames = 0
        self.audio_buffers = 0  # decoded Opus buffers
        self.width = None
        self.height = None
        self.decoded_codec = None
        self.errors = []
        self.first_frame_at = None
        self.lock = threading.Lock()
        self.pipe = Gst.Pipeline.new("peer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "recv")
        if self.webrtc is None:
            sys.exit("webrtcbin missing: install gstreamer1.0-plugins-bad and gstreamer1.0-nice")
        # max-bundle: one transport for both m-lines, as browsers do.
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipe.add(self.webrtc)
        if local_address:
            # libnice skips loopback interfaces; told an address explicitly it gathers on that
            # one only, so the test stays on 127.0.0.1 (no extra interface in the namespace).
            add_local_ip_address(self.webrtc, local_address)
        self.webrtc.connect("pad-added", self.on_pad_added)
        enc, _, extra = CODECS[video]
        vcaps = Gst.Caps.from_string(
            f"application/x-rtp,media=video,encoding-name={enc},payload=96,clock-rate=90000{extra}"
        )
        acaps = Gst.Caps.from_string(
            # RFC 7587: opus/48000/2 (str0m rejects an Opus line without the channel count).
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2"
        )
        recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
        self.webrtc.emit("add-transceiver", recv, vcaps)
        self.webrtc.emit("add-transceiver", recv, acaps)

    def on_pad_added(self, _webrtc, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        s = caps.get_structure(0)
        media = s.get_string("media")
        enc = s.get_string("encoding-name")
        log(f"incoming {media} stream {enc}")
        if media == "video":
            chain = CODECS[self.video][1] + " ! videoconvert ! fakesink name=vsink sync=false"
            self.decoded_codec = enc
        else:
            chain = "rtpopusdepay ! opusdec ! fakesink name=asink sync=false"
        bin_ = Gst.parse_bin_from_description(chain, True)
        self.pipe.add(bin_)
        bin_.sync_state_with_parent()
        pad.link(bin_.get_static_pad("sink"))
        if media == "video":
            sink = bin_.get_by_name("vsink")
            sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.on_frame)
        else:
            sink = bin_.get_by_name("asink")
            sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.on_audio)

    def on_audio(self, _pad, _info):
        with self.lock:
            self.audio_buffers += 1
        return Gst.PadProbeReturn.OK

    def on_frame(self, pad, _info):
        with self.lock:
            self.frames += 1
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            caps = pad.get_current_caps()
            if caps:
                s = caps.get_structure(0)
                self.width = s.get_value("width")
                self.height = s.get_value("height")
        return Gst.PadProbeReturn.OK

    def start(self):
        self.pipe.set_state(Gst.State.PLAYING)
        # create-offer before webrtcbin reached PLAYING replies with a NULL offer (1.22).
        self.pipe.get_state(5 * Gst.SECOND)

    def make_offer(self):
        made = Gst.Promise.new()
        self.webrtc.emit("create-offer", None, made)
        made.wait()
        # The offer belongs to the reply structure: keep `reply` alive while the offer is used.
        reply = made.get_reply()
        offer = reply.get_value("offer")
        promise = Gst.Promise.new()
        self.webrtc.emit("set-local-description", offer, promise)
        promise.wait()
        del reply
        # camgate trickles nothing and is ICE-lite: it learns our address from our checks, but a
        # complete offer is what browsers effectively send, so wait (briefly) for gathering.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self.webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
                break
            time.sleep(0.05)
        return self.webrtc.get_property("local-description").sdp.as_text()

    def set_answer(self, sdp_text):
        res, msg = GstSdp.SDPMessage.new_from_text(sdp_text)
        if res != GstSdp.SDPResult.OK:
            raise RuntimeError("unparsable answer SDP")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        promise = Gst.Promise.new()
        self.webrtc.emit("set-remote-description", answer, promise)
        promise.wait()

    def poll_bus(self):
        bus = self.pipe.get_bus()
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            if msg is None:
                return
            if msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
            else:
                err, dbg = msg.parse_warning()
            text = f"{msg.src.get_name()}: {err.message}"
            log(text + (f" ({dbg.splitlines()[0]})" if dbg else ""))
            if msg.type == Gst.MessageType.ERROR:
                self.errors.append(text)

    def states(self):
        ice = self.webrtc.get_property("ice-connection-state")
        conn = self.webrtc.get_property("connection-state")
        return ice.value_nick, conn.value_nick

    def stop(self):
        self.pipe.set_state(Gst.State.NULL)


# ----------------------------------------------------------------------------------------------
# Signaling


def whep(url, offer):
    req = urllib.request.Request(
        url, data=offer.encode(), method="POST", headers={"Content-Type": "application/sdp"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            location = res.headers.get("Location")
            answer = res.read().decode()
    except urllib.error.HTTPError as e:
        return None, None, f"HTTP {e.code}: {e.read().decode(errors='replace').strip()}"
    if location:
        location = urllib.parse.urljoin(url, location)
    return answer, location, None


def whep_delete(location):
    try:
        req = urllib.request.Request(location, method="DELETE")
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code


class WebSocket:
    """The smallest RFC 6455 client that camgate's signaling needs: text frames, no extensions."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        if u.scheme != "ws":
            raise ValueError("only ws:// (plain) URLs")
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path or "/"
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"no upgrade: {head.splitlines()[0]!r}")

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("WebSocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout):
        """The next JSON text message, or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                b0, b1 = self._read(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", self._read(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", self._read(8))
                payload = self._read(n)  # server frames are not masked
                op = b0 & 0x0F
                if op == 0x1:
                    return json.loads(payload)
                if op == 0x8:
                    raise ConnectionError("WebSocket closed by the server")
                # ping/pong/binary: not used by camgate's signaling
        except socket.timeout:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ws_play(ws, stream, offer, session_id, timeout):
    """Flashphoner protocol: connection → getUserData, playStream{sdp} → setRemoteSDP + status."""
    ws.send(
        {
            "message": "connection",
            "data": [{"appKey": "defaultApp", "mediaProviders": ["WebRTC"], "clientVersion": "2.0"}],
        }
    )
    deadline = time.monotonic() + timeout
    established = False
    while not established:
        msg = ws.recv(max(0.1, deadline - time.monotonic()))
        if msg is None:
            return None, "no getUserData"
        established = msg.get("message") == "getUserData"
    ws.send(
        {
            "message": "playStream",
            "data": [
                {
                    "mediaSessionId": session_id,
                    "name": stream,
                    "published": False,
                    "hasVideo": True,
                    "hasAudio": True,
                    "status": "PENDING",
                    "record": False,
                    "width": 0,
                    "height": 0,
                    "mediaProvider": "WebRTC",
                    "sdp": offer,
                }
            ],
        }
    )
    while time.monotonic() < deadline:
        msg = ws.recv(max(0.1, deadline - time.monotonic()))
        if msg is None:
            break
        name, data = msg.get("message"), msg.get("data") or []
        log(f"ws <- {name} {json.dumps(data)[:160]}")
        if name == "setRemoteSDP" and len(data) >= 2 and data[0] == session_id:
            return data[1], None
        if name == "notifyStreamStatusEvent" and data and data[0].get("status") == "FAILED":
            return None, data[0].get("info") or "FAILED"
        if name == "ping":
            ws.send({"message": "pong", "data": [None]})
    return None, "no setRemoteSDP"


# ----------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--whep", help="camgate WHEP endpoint URL (http://.../whep/<stream>)")
    how.add_argument("--ws", help="camgate WebSocket signaling URL (ws://host:8080)")
    p.add_argument("--stream", help="stream name for --ws (a camera URL or a named stream)")
    p.add_argument("--video", choices=list(CODECS), default="h264")
    p.add_argument("--frames", type=int, default=30, help="decoded frames to wait for")
    p.add_argument(
        "--local-address", default="127.0.0.1", help="ICE host address ('' = every interface)"
    )
    p.add_argument("--timeout", type=float, default=20, help="seconds for the whole run")
    args = p.parse_args()
    if args.ws and not args.stream:
        p.error("--ws needs --stream")

    Gst.init(None)
    for name in ("webrtcbin", "nicesrc", "avdec_" + args.video):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"GStreamer element {name} missing (gstreamer1.0-plugins-bad, -nice, -libav)")

    started = time.monotonic()
    deadline = started + args.timeout
    peer = Peer(args.video, args.local_address)
    peer.start()
    # Sent as webrtcbin makes it: with max-bundle the audio line is `m=audio 0` + a=bundle-only
    # (RFC 8843), which browsers do not send; camgate (str0m 0.25) accepts it as bundled.
    offer = peer.make_offer()
    result = {"video": args.video, "signaling": "whep" if args.whep else "ws"}
    ws = location = None
    refused = None
    if args.whep:
        answer, location, refused = whep(args.whep, offer)
    else:
        ws = WebSocket(args.ws)
        answer, refused = ws_play(ws, args.stream, offer, str(uuid.uuid1()), args.timeout)
    log("offer:\n" + offer)
    if answer is not None:
        log("answer:\n" + answer)
        result["answer_video"] = [
            line for line in answer.splitlines() if re.match(r"a=rtpmap:\d+ (H26[45]|VP8)", line)
        ]
        answered_at = time.monotonic()
        peer.set_answer(answer)
        while time.monotonic() < deadline and peer.frames < args.frames and not peer.errors:
            time.sleep(0.05)
            peer.poll_bus()
            if ws is not None:
                msg = ws.recv(0.001)
                if msg and msg.get("message") == "ping":
                    ws.send({"message": "pong", "data": [None]})
        if peer.first_frame_at is not None:
            result["first_frame_ms"] = round((peer.first_frame_at - answered_at) * 1000)
    peer.poll_bus()
    ice, conn = peer.states()
    with peer.lock:
        result.update(
            frames=peer.frames,
            width=peer.width,
            height=peer.height,
            codec=peer.decoded_codec,
            audio_buffers=peer.audio_buffers,
            ice=ice,
            connection=conn,
            errors=peer.errors,
        )
    if refused:
        result["refused"] = refused
    if location:
        result["delete_status"] = whep_delete(location)
    if ws is not None:
        ws.close()
    peer.stop()
    print("RESULT " + json.dumps(result), flush=True)
    if refused:
        sys.exit(2)
    sys.exit(0 if result["frames"] >= args.frames else 1)


if __name__ == "__main__":
    main()
