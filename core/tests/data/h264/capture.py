#!/usr/bin/python3
"""Records a GStreamer video encoder + RTP payloader the way a camera would send it.

usage: capture.py NAME 'ENCODER ...' 'PAYLOADER ...' [FRAMES] [WIDTHxHEIGHT] [PATTERN]

Runs  videotestsrc pattern=PATTERN num-buffers=FRAMES ! video/x-raw,I420,WxH,30 fps ! ENCODER
      ! identity name=encoded ! PAYLOADER timestamp-offset=0 seqnum-offset=0 ! appsink
and writes next to the current directory:
  NAME.rtp     every RTP packet, each prefixed by its 2-byte big-endian length (RFC 4571 framing,
               the same format as `rtpstreampay ! filesink`)
  NAME.frames  one line per encoded frame in decode order: "<rtp timestamp> <1 if keyframe else 0>"
               (keyframe = the encoder's buffer lacks GST_BUFFER_FLAG_DELTA_UNIT)
  NAME.meta    the payloader's output caps as the camera's SDP would carry them:
               encoding=, clock_rate=, fmtp= (string fields of the caps, key=value;...)
Needs python3-gi, gir1.2-gstreamer-1.0 and the plugins providing the elements.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

STANDARD_FIELDS = {"media", "encoding-name", "encoding-params", "a-framerate"}


def main():
    name, encoder, payloader = sys.argv[1:4]
    frames = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    width, height = (sys.argv[5] if len(sys.argv) > 5 else "320x240").split("x")
    pattern = sys.argv[6] if len(sys.argv) > 6 else "ball"
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc pattern={pattern} num-buffers={frames} "
        f"! video/x-raw,format=I420,width={width},height={height},framerate=30/1 "
        f"! {encoder} ! identity name=encoded "
        f"! {payloader} name=pay timestamp-offset=0 seqnum-offset=0 "
        "! appsink name=sink sync=false"
    )
    encoded = []

    def on_frame(_pad, info):
        buf = info.get_buffer()
        keyframe = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        encoded.append((buf.pts * 90000 // Gst.SECOND, keyframe))
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("encoded").get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER, on_frame
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    packets = []
    caps = None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        caps = caps or sample.get_caps()
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        assert ok
        packets.append(bytes(info.data))
        buf.unmap(info)
    bus = pipeline.get_bus()
    err = bus.pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if err is not None:
        sys.exit(f"{name}: {err.parse_error()}")

    with open(f"{name}.rtp", "wb") as f:
        for p in packets:
            f.write(len(p).to_bytes(2, "big") + p)
    with open(f"{name}.frames", "w") as f:
        for ts, key in encoded:
            f.write(f"{ts & 0xFFFFFFFF} {int(key)}\n")
    s = caps.get_structure(0)
    fmtp = []
    for i in range(s.n_fields()):
        field = s.nth_field_name(i)
        value = s.get_value(field)
        if isinstance(value, str) and field not in STANDARD_FIELDS:
            fmtp.append(f"{field}={value}")
    with open(f"{name}.meta", "w") as f:
        f.write(f"encoding={s.get_value('encoding-name')}\n")
        f.write(f"clock_rate={s.get_value('clock-rate')}\n")
        f.write(f"fmtp={';'.join(fmtp)}\n")
    keys = sum(k for _, k in encoded)
    size = sum(len(p) for p in packets)
    print(f"{name}: {len(packets)} packets, {size} bytes, {len(encoded)} frames, {keys} keyframes")


main()
