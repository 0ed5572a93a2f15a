#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ (the fuzzer's working corpus, not committed) with
#  - inputs derived from the recorded gst-rtsp-server exchange in core/src/rtsp/testdata/
#    (also written to fuzz/seeds/<target>/gst-*, which are committed and replayed by
#    core/tests/fuzz_regressions.rs), and
#  - the hand-written seeds in fuzz/seeds/<target>/.
# Idempotent; needs bash, xxd and perl.
set -euo pipefail
cd "$(dirname "$0")"
td=../core/src/rtsp/testdata
seeds=seeds

for t in rtsp_framing rtsp_client camera_sdp rtp_parse h264_relay h264_depacketize signaling rtsp_url; do
  mkdir -p "$seeds/$t" "corpus/$t"
done

# The server's side of the session: OPTIONS, DESCRIBE, SETUP, PLAY answers, then the first
# three interleaved RTP frames (one hex line each).
exchange() {
  cat "$td/gst_options.txt" "$td/gst_describe.txt" "$td/gst_setup.txt" "$td/gst_play.txt"
  xxd -r -p "$td/gst_rtp_after_play.hex"
}

# rtsp_framing: 2 bytes of split points, then the stream.
{ printf '\x55\xaa'; exchange; } > "$seeds/rtsp_framing/gst-exchange"
for f in options describe setup play; do
  { printf '\x80\x80'; cat "$td/gst_$f.txt"; } > "$seeds/rtsp_framing/gst-$f"
done

# rtsp_client: 1 byte seeding chunk sizes/clock steps (even: chunks of 1..64 bytes; odd: up to
# 2 KiB), then the server's bytes. The client's CSeqs (1..4) match the recording.
{ printf '\x00'; exchange; } > "$seeds/rtsp_client/gst-exchange-small-chunks"
{ printf '\x07'; exchange; } > "$seeds/rtsp_client/gst-exchange-big-chunks"

# camera_sdp: the DESCRIBE body, with the default base and with its Content-Base.
perl -0777 -ne 'print((split /\r\n\r\n/, $_, 2)[1])' "$td/gst_describe.txt" > "$seeds/camera_sdp/gst-describe"
{ printf 'rtsp://127.0.0.1:18554/test/\0'; cat "$seeds/camera_sdp/gst-describe"; } > "$seeds/camera_sdp/gst-describe-base"

# rtp_parse and the H.264 streams: the RTP packets inside the `$` frames.
i=0
stream=$(mktemp)
printf '\x40' > "$stream" # with the SDP's sprop-parameter-sets, max payload 3
while read -r hex; do
  i=$((i + 1))
  rtp=${hex:8} # drop `$`, channel, length
  echo "$rtp" | xxd -r -p > "$seeds/rtp_parse/gst-rtp-$i"
  payload=${rtp:24} # drop the 12-byte RTP header
  printf "00%02x%s" $((${#payload} / 2)) "$payload" | xxd -r -p >> "$stream"
done < "$td/gst_rtp_after_play.hex"
cp "$stream" "$seeds/h264_relay/gst-aud-sps-pps"
cp "$stream" "$seeds/h264_depacketize/gst-aud-sps-pps"
rm -f "$stream"

for t in "$seeds"/*/; do
  t=$(basename "$t")
  cp -f "$seeds/$t"/* "corpus/$t/"
done
echo "corpus: $(find corpus -type f | wc -l) files, $(du -sh corpus | cut -f1)"
