#!/usr/bin/env sh
# Regenerates server/assets/demo.h264, the clip looped by the built-in demo camera.
# Needs gst-launch-1.0 with plugins-base (videotestsrc, compositor, textoverlay/timeoverlay: pango),
# plugins-ugly (x264enc) and plugins-bad (h264parse).
#
# Why these settings: constrained-baseline (no CABAC, no B-frames) decodes in every browser;
# 640x360@30 lands in level 3.0; an IDR every 30 frames (scenecut off so there are no extra
# I-frames) lets a new viewer start within 1 s; h264parse config-interval=-1 repeats SPS/PPS
# before every IDR; no AUDs (useless over RTP); 300 frames = 10 s, the loop length.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-server/assets/demo.h264}

# Scene: SMPTE bars scrolling sideways (incl. the noise patch, which keeps the bitrate
# realistic at ~1 Mbit/s) + a bouncing ball + a caption + a running time overlay.
gst-launch-1.0 -q -e \
  compositor name=mix background=black ! videoconvert \
  ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
  ! textoverlay text="camgate demo" valignment=top halignment=left font-desc="Sans 20" \
  ! timeoverlay valignment=bottom halignment=right font-desc="Sans 20" \
  ! x264enc bitrate=1000 key-int-max=30 bframes=0 aud=false speed-preset=medium tune=zerolatency \
      option-string="scenecut=0:keyint-min=30" \
  ! video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline \
  ! h264parse config-interval=-1 \
  ! video/x-h264,stream-format=byte-stream,alignment=au \
  ! filesink location="$OUT" \
  videotestsrc pattern=smpte horizontal-speed=2 num-buffers=300 \
  ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! mix.sink_0 \
  videotestsrc pattern=ball motion=wavy background-color=0x00000000 foreground-color=0xffffffff num-buffers=300 \
  ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! mix.sink_1

ls -l "$OUT"
