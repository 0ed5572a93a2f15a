#!/usr/bin/python3
"""A live test camera for camgate's tests: GStreamer's gst-rtsp-server.

Run with Debian's /usr/bin/python3 (it needs python3-gi and
gir1.2-gst-rtsp-server-1.0; the pyenv python on PATH does not have them):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /cam --video h264

Serves rtsp://127.0.0.1:<port><path>, bound to 127.0.0.1 only. Prints
"READY rtsp://..." on stdout once it listens; exits cleanly on SIGTERM/SIGINT.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# Video sources. Each entry is a launch fragment that ends in a payloader named
# pay0. Keep them live (is-live=true) so the camera behaves like a real one.
VIDEO = {
    # Constrained baseline, no B-frames, 1 s GOP, SPS/PPS with every IDR.
    "h264": (
        "videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width={width},height={height},framerate={fps}/1 "
        "! timeoverlay "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=1"
    ),
}

# Audio sources (payloader pay1). Empty for now: add "pcmu", "opus", "aac" ...
AUDIO = {
    "none": None,
}

PROTOCOLS = {
    "udp": GstRtsp.RTSPLowerTrans.UDP,
    "tcp": GstRtsp.RTSPLowerTrans.TCP,
    "udp-mcast": GstRtsp.RTSPLowerTrans.UDP_MCAST,
}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--path", default="/cam", help="mount point, e.g. /cam")
    p.add_argument("--video", choices=sorted(VIDEO), default="h264")
    p.add_argument("--audio", choices=sorted(AUDIO), default="none")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument(
        "--protocols",
        default="udp,tcp",
        help="comma-separated lower transports to allow: udp,tcp,udp-mcast",
    )
    p.add_argument("--user", help="require Basic auth with this user name")
    p.add_argument("--password", default="", help="password for --user")
    p.add_argument(
        "--not-shared",
        action="store_true",
        help="one pipeline per client instead of a shared one",
    )
    return p.parse_args(argv)


def launch_line(args):
    parts = [VIDEO[args.video].format(width=args.width, height=args.height, fps=args.fps)]
    if AUDIO[args.audio]:
        parts.append(AUDIO[args.audio])
    return "( " + " ".join(parts) + " )"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    path = args.path if args.path.startswith("/") else "/" + args.path
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(not args.not_shared)
    protos = GstRtsp.RTSPLowerTrans(0)
    for name in args.protocols.split(","):
        name = name.strip()
        if name not in PROTOCOLS:
            sys.exit(f"unknown protocol {name!r}; use {','.join(PROTOCOLS)}")
        protos |= PROTOCOLS[name]
    factory.set_protocols(protos)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password)
        auth.add_basic(basic, token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )

    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), False)[1])

    port = server.get_bound_port()
    print(f"READY rtsp://127.0.0.1:{port}{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
