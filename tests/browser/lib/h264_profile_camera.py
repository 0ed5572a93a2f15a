#!/usr/bin/python3
"""tests/rtsp_server.py whose --h264-profile main/high really sends Main/High profile.

With speed-preset=ultrafast x264 turns CABAC and 8x8 transforms off and then writes the lowest
profile the stream fits: `--h264-profile main` or `high` (without B-frames) still sends a
constrained-baseline SPS (profile-level-id 42c01e), only the caps say main/high. This wrapper adds
cabac=true (Main: 4d401e) and, for High, dct8x8=true (64001e). Same arguments as rtsp_server.py.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import rtsp_server  # noqa: E402  (tests/rtsp_server.py)

FEATURES = {"main": "cabac=true ", "high": "cabac=true dct8x8=true "}

if __name__ == "__main__":
    args = rtsp_server.parse_args(sys.argv[1:])
    extra = FEATURES.get(args.h264_profile, "")
    rtsp_server.VIDEO["h264"] = rtsp_server.VIDEO["h264"].replace("b-adapt=false ", "b-adapt=false " + extra)
    sys.exit(rtsp_server.main())
