#!/usr/bin/python3
"""A live test camera for camgate's tests: GStreamer's gst-rtsp-server.

Run with Debian's /usr/bin/python3 (it needs python3-gi and
gir1.2-gst-rtsp-server-1.0; the pyenv python on PATH does not have them):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /cam --video h264

Serves rtsp://127.0.0.1:<port><path>, bound to 127.0.0.1 only. Prints
"READY rtsp://..." on stdout once it listens (the launch line goes to stderr);
exits cleanly on SIGTERM/SIGINT.

More cameras:
    --video h264 --h264-profile high --bframes 2     B-frames, High profile
    --video h265 | vp8 | mjpeg | none
    --audio pcmu | pcma | g722 | l16 | g726 | opus | aac | aac-latm | speex
    --aac-encoder avenc_aac | voaacenc | fdkaacenc     which AAC encoder (exits if it is missing)
    --user admin --password secret [--auth digest]   401 without credentials
    --protocols tcp                                  interleaved only
    --tls-cert cert.pem --tls-key key.pem            serve rtsps:// (RTSP over TLS) instead
    --log-sessions                                   "SESSION <peer>" on stdout per RTSP session
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# Video sources: launch fragments ending in a payloader ({pay} becomes pay0, pay1...). They are live
# (is-live=true) so the camera behaves like a real one: it does not wait for clients.
VIDEO_SRC = (
    "videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width={width},height={height},framerate={fps}/1 "
    "! timeoverlay "
)
# With speed-preset=ultrafast x264 turns CABAC and 8x8 transforms off, then writes the lowest
# profile the stream fits: without these, --h264-profile main or high (no B-frames) would still
# send a constrained-baseline SPS (42c01e) and only the caps would say main/high.
H264_FEATURES = {"main": "cabac=true ", "high": "cabac=true dct8x8=true "}

VIDEO = {
    # 1 s GOP, SPS/PPS in band with every IDR. --h264-profile / --bframes change the stream.
    "h264": (
        VIDEO_SRC
        + "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes={bframes} "
        "b-adapt=false {h264_features}"
        "! video/x-h264,profile={h264_profile} "
        "! rtph264pay name={pay} pt=96 config-interval=1"
    ),
    # 4:2:0 (Main profile) as cameras send it; without the format x265enc takes 4:4:4 (RExt).
    # VPS/SPS/PPS only before IDRs, as cameras do: x265's open GOP makes later keyframes CRAs,
    # which come without them.
    "h265": (
        VIDEO_SRC
        + "! video/x-raw,format=I420 "
        "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph265pay name={pay} pt=96 config-interval=-1"
    ),
    "vp8": (
        VIDEO_SRC
        + "! vp8enc deadline=1 keyframe-max-dist={fps} "
        "! rtpvp8pay name={pay} pt=96"
    ),
    # MJPEG (static PT 26): video WebRTC cannot carry, for the refusal tests.
    # rtpjpegpay (RFC 2435) takes 4:2:0 JPEG only.
    "mjpeg": VIDEO_SRC + "! videoconvert ! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name={pay} pt=26",
    "none": None,
}

# Audio sources: a live 440 Hz tone.
AUDIO_SRC = "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample "
AUDIO = {
    "none": None,
    "pcmu": AUDIO_SRC + "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name={pay} pt=0",
    "pcma": AUDIO_SRC + "! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name={pay} pt=8",
    "opus": AUDIO_SRC + "! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay name={pay} pt=97",
    # AAC as mpeg4-generic (most cameras) and as MP4A-LATM.
    "aac": AUDIO_SRC + "! audio/x-raw,rate=16000,channels=1 ! {aacenc} ! rtpmp4gpay name={pay} pt=97",
    "aac-latm": AUDIO_SRC + "! audio/x-raw,rate=16000,channels=1 ! {aacenc} ! rtpmp4apay name={pay} pt=97",
    "speex": AUDIO_SRC + "! audio/x-raw,rate=16000,channels=1 ! speexenc ! rtpspeexpay name={pay} pt=97",
    # G.722 (intercoms, doorbells): 16 kHz audio on an 8000 Hz RTP clock (RFC 3551), static PT 9.
    "g722": AUDIO_SRC + "! audio/x-raw,rate=16000,channels=1 ! avenc_g722 ! rtpg722pay name={pay} pt=9",
    # L16: big-endian linear PCM, 16 kHz mono (640-byte packets every 20 ms).
    "l16": AUDIO_SRC + "! audio/x-raw,format=S16BE,rate=16000,channels=1 ! rtpL16pay name={pay} pt=97",
    # G.726 (32 kbit/s): audio camgate does not decode, for the left-out tests.
    "g726": AUDIO_SRC + "! audio/x-raw,rate=8000,channels=1 ! avenc_g726 bitrate=32000 ! rtpg726pay name={pay} pt=97",
}


# AAC encoders differ in what they write: libavcodec's (avenc_aac, gstreamer1.0-libav) ends its
# AudioSpecificConfig with the backward-compatible SBR signalling (sync extension 0x2b7), VisualOn's
# (voaacenc, gstreamer1.0-plugins-bad) writes plain AAC-LC. Tests name the one they mean.
AAC_ENCODERS = {
    "avenc_aac": "gstreamer1.0-libav",
    "voaacenc": "gstreamer1.0-plugins-bad",
    "fdkaacenc": "gstreamer1.0-plugins-bad built with fdk-aac (not in Debian)",
}


def aac_encoder(name):
    """The encoder asked for, or exit: never another one, so a test means the same on every machine."""
    if not Gst.ElementFactory.find(name):
        sys.exit(f"AAC encoder {name} is not installed (package {AAC_ENCODERS[name]})")
    return name


PROTOCOLS = {
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
    "udp-mcast": GstRtsp.RTSPLowerTrans.UDP_MCAST,
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8554, help="0: any free port (see READY)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on, e.g. ::1")
    p.add_argument("--path", default="/cam", help="mount point, e.g. /cam")
    p.add_argument("--video", choices=list(VIDEO), default="h264")
    p.add_argument("--audio", choices=list(AUDIO), default="none")
    p.add_argument(
        "--aac-encoder",
        choices=list(AAC_ENCODERS),
        default="avenc_aac",
        help="encoder for --audio aac / aac-latm (default avenc_aac); exits if it is not installed",
    )
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument(
        "--h264-profile",
        default="constrained-baseline",
        choices=["constrained-baseline", "baseline", "main", "high"],
    )
    p.add_argument("--bframes", type=int, default=0, help="H.264 B-frames (needs main or high)")
    p.add_argument(
        "--protocols",
        default="udp,tcp",
        help="comma-separated lower transports to allow: udp,tcp,udp-mcast",
    )
    p.add_argument("--user", help="require Basic auth with this user name")
    p.add_argument("--password", default="", help="password for --user")
    p.add_argument("--auth", choices=["basic", "digest"], default="basic", help="method for --user")
    p.add_argument("--tls-cert", help="PEM certificate: serve rtsps:// (RTSP over TLS)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert (default: in --tls-cert)")
    p.add_argument(
        "--log-sessions",
        action="store_true",
        help='print "SESSION <peer>" on stdout for each new RTSP session (how many clients play)',
    )
    p.add_argument(
        "--not-shared",
        action="store_true",
        help="one pipeline per client instead of a shared one",
    )
    return p.parse_args(argv)


def launch_line(args):
    parts = []
    if VIDEO[args.video]:
        parts.append(
            VIDEO[args.video].format(
                width=args.width,
                height=args.height,
                fps=args.fps,
                bframes=args.bframes,
                h264_profile=args.h264_profile,
                h264_features=H264_FEATURES.get(args.h264_profile, ""),
                pay="pay0",
            )
        )
    if AUDIO[args.audio]:
        aacenc = aac_encoder(args.aac_encoder) if "{aacenc}" in AUDIO[args.audio] else ""
        parts.append(AUDIO[args.audio].format(aacenc=aacenc, pay=f"pay{len(parts)}"))
    if not parts:
        sys.exit("nothing to serve: --video none and --audio none")
    return "( " + " ".join(parts) + " )"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    path = args.path if args.path.startswith("/") else "/" + args.path
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    launch = launch_line(args)
    print(f"launch: {launch}", file=sys.stderr, flush=True)
    factory.set_launch(launch)
    factory.set_shared(not args.not_shared)
    protos = GstRtsp.RTSPLowerTrans(0)
    for name in args.protocols.split(","):
        name = name.strip()
        if name not in PROTOCOLS:
            sys.exit(f"unknown protocol {name!r}; use {','.join(PROTOCOLS)}")
        protos |= PROTOCOLS[name]
    factory.set_protocols(protos)

    auth = None
    if args.tls_cert:
        # gst-rtsp-server serves RTSP over TLS when its GstRTSPAuth has a certificate.
        pem = open(args.tls_cert).read() + open(args.tls_key or args.tls_cert).read()
        auth = GstRtspServer.RTSPAuth()
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_pem(pem, -1))
        if not args.user:
            # An auth object denies everything by default: let anonymous clients play.
            anon = GstRtspServer.RTSPToken()
            anon.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
            auth.set_default_token(anon)
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "anonymous, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )
            )
        server.set_auth(auth)

    if args.user:
        auth = auth or GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )

    server.get_mount_points().add_factory(path, factory)
    if args.log_sessions:

        def on_client(_server, client):
            peer = client.get_connection().get_ip()
            client.connect(
                "new-session", lambda *_: print(f"SESSION {peer}", flush=True)
            )

        server.connect("client-connected", on_client)
    host = f"[{args.address}]" if ":" in args.address else args.address
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on {host}:{args.port}")

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), False)[1])

    port = server.get_bound_port()
    scheme = "rtsps" if args.tls_cert else "rtsp"
    print(f"READY {scheme}://{host}:{port}{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
