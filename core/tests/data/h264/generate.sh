#!/bin/sh
# Regenerates the H.264 RTP captures used by core/src/h264/bframe_tests.rs and tests.rs (see README.md).
# Needs: python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good (rtph264pay)
# gstreamer1.0-plugins-ugly (x264enc).
set -eu
cd "$(dirname "$0")"
enc="x264enc key-int-max=30 bitrate=200 speed-preset=veryfast"
pay="rtph264pay mtu=600 config-interval=-1"
src="smpte horizontal-speed=2"
/usr/bin/python3 capture.py x264_bframes2 "$enc bframes=2 b-adapt=false" "$pay" 60 320x240 "$src"
/usr/bin/python3 capture.py x264_bframes0 "$enc bframes=0" "$pay" 60 320x240 "$src"
/usr/bin/python3 capture.py x264_mtu1400 "x264enc key-int-max=30 bitrate=600 speed-preset=veryfast tune=zerolatency" \
  "rtph264pay mtu=1400 config-interval=-1" 40 640x360 "$src"
