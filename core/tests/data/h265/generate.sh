#!/bin/sh
# Regenerates the H.265 RTP captures used by core/src/h265/tests.rs (see README.md).
# Needs: python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good (rtph265pay)
# gstreamer1.0-plugins-bad (x265enc).
set -eu
cd "$(dirname "$0")"
cap=../h264/capture.py
src="smpte horizontal-speed=2"
# The test camera (tests/rtsp_server.py --video h265): no B-frames, 1 s GOP, real-camera MTU, parameter
# sets aggregated in front of every IRAP.
/usr/bin/python3 $cap x265_zerolatency \
  "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=600" \
  "rtph265pay mtu=1400 config-interval=-1 aggregate-mode=zero-latency" 60 640x360 "$src"
# x265's defaults with B-frames: reordering, b-pyramid, open GOP; parameter sets as single NAL units.
/usr/bin/python3 $cap x265_bframes \
  "x265enc speed-preset=ultrafast key-int-max=30 bitrate=300 option-string=bframes=3:b-pyramid=1:open-gop=1" \
  "rtph265pay mtu=1400 config-interval=-1" 60 320x240 "$src"
