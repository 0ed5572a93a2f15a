#!/bin/sh
# Regenerates the VP8 RTP captures used by core/tests/vp8_*.rs (see README.md).
# Needs: python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good (vp8enc, rtpvp8pay).
set -eu
cd "$(dirname "$0")"
cap=../h264/capture.py
# 320x240, moving SMPTE bars, keyframe every 30 frames, 15-bit PictureID, frames over several packets.
/usr/bin/python3 $cap vp8_320x240 "vp8enc keyframe-max-dist=30 deadline=1 target-bitrate=200000" \
    "rtpvp8pay mtu=400 picture-id-mode=15-bit" 60 320x240 "smpte horizontal-speed=2"
# 176x144, bouncing ball, keyframe every 20 frames, 7-bit PictureID.
/usr/bin/python3 $cap vp8_176x144_pid7 "vp8enc keyframe-max-dist=20 deadline=1" \
    "rtpvp8pay mtu=300 picture-id-mode=7-bit" 45 176x144 ball
