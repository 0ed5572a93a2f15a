#!/bin/sh
# Regenerates the RTP captures used by core/tests/audio_*.rs.
#
# Every capture is 1 s of a 1 kHz sine at -12 dBFS peak (audiotestsrc volume=0.25) encoded by GStreamer and
# payloaded by its RTP payloader. `rtpstreampay` frames each RTP packet as RFC 4571 (2-byte big-endian length +
# the whole RTP packet), so `NAME.rtp` holds the payloads, timestamps and marker bits exactly as a camera would
# send them. `NAME.meta` holds what the camera's SDP would say: encoding name, clock rate, channels and the fmtp
# line, copied from the payloader's output caps.
#
# Needs: gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad (voaacenc)
# gstreamer1.0-libav (avenc_aac, avenc_g722).
# Usage: sh core/tests/data/audio/generate.sh   (from anywhere; writes next to this script)
set -eu
cd "$(dirname "$0")"

# capture NAME ENCODER-AND-PAYLOADER-PIPELINE-TAIL RAWCAPS [SOURCE]
capture() {
    name=$1 tail=$2 raw=$3
    src=${4:-"audiotestsrc wave=sine freq=1000 volume=0.25 samplesperbuffer=RATE/50 num-buffers=50"}
    rate=$(echo "$raw" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')
    src=$(echo "$src" | sed "s|RATE/50|$((rate / 50))|g")
    # shellcheck disable=SC2086
    log=$(gst-launch-1.0 -v $src ! $raw ! $tail ! rtpstreampay ! filesink location="$name.rtp" 2>&1)
    caps=$(echo "$log" | grep 'rtpstreampay0.GstPad:src: caps' | tail -n1 | sed 's/.*caps = //')
    enc=$(echo "$caps" | sed -n 's/.*encoding-name=(string)\([^,]*\).*/\1/p')
    clock=$(echo "$caps" | sed -n 's/.*clock-rate=(int)\([0-9]*\).*/\1/p')
    ch=$(echo "$caps" | sed -n 's/.*encoding-params=(string)\([0-9]*\).*/\1/p')
    # fmtp = every string-valued field except the well-known RTP ones, as key=value;...
    fmtp=$(echo "$caps" | tr ',' '\n' | sed -n 's/^ *\([a-z-]*\)=(string)\(.*\)$/\1=\2/p' |
        grep -v -e '^media=' -e '^encoding-name=' -e '^encoding-params=' | tr '\n' ';' | sed 's/;$//')
    printf 'encoding=%s\nclock_rate=%s\nchannels=%s\nfmtp=%s\n' "$enc" "$clock" "${ch:-1}" "$fmtp" >"$name.meta"
    echo "$name: $(wc -c <"$name.rtp") bytes; $enc/$clock/${ch:-1} $fmtp"
}

for rate in 8000 11025 16000 22050 44100 48000; do
    capture "aac_hbr_${rate}_mono" "voaacenc bitrate=32000 ! rtpmp4gpay pt=96" "audio/x-raw,rate=$rate,channels=1"
done
# AUs fragmented over several packets (mtu 100 < AU size).
capture aac_hbr_48000_mono_frag "voaacenc bitrate=32000 ! rtpmp4gpay pt=96 mtu=100" "audio/x-raw,rate=48000,channels=1"
# Stereo: left 1 kHz, right 500 Hz (to check the channels stay apart), written as a WAV by python3's stdlib.
python3 -c '
import math, struct, wave
w = wave.open("/tmp/camgate_stereo.wav", "wb"); w.setnchannels(2); w.setsampwidth(2); w.setframerate(48000)
w.writeframes(b"".join(struct.pack("<hh", round(8191 * math.sin(2 * math.pi * 1000 * n / 48000)),
                                   round(8191 * math.sin(2 * math.pi * 500 * n / 48000))) for n in range(48000)))
w.close()'
STEREO="filesrc location=/tmp/camgate_stereo.wav ! wavparse"
capture aac_hbr_48000_stereo "voaacenc bitrate=64000 ! rtpmp4gpay pt=96" "audio/x-raw,rate=48000,channels=2" "$STEREO"
capture latm_44100_mono "voaacenc bitrate=32000 ! rtpmp4apay pt=97" "audio/x-raw,rate=44100,channels=1"
capture latm_48000_stereo "voaacenc bitrate=64000 ! rtpmp4apay pt=97" "audio/x-raw,rate=48000,channels=2" "$STEREO"
capture latm_16000_mono_frag "voaacenc bitrate=32000 ! rtpmp4apay pt=97 mtu=80" "audio/x-raw,rate=16000,channels=1"
# libavcodec's AAC encoder (gstreamer1.0-libav): its AudioSpecificConfig ends in the backward-compatible sync
# extension (0x2b7, AOT 5, no SBR), which rtpmp4apay copies into the StreamMuxConfig before frameLengthType.
capture aac_hbr_avenc_16000_mono "avenc_aac bitrate=32000 ! rtpmp4gpay pt=96" "audio/x-raw,rate=16000,channels=1"
capture latm_avenc_16000_mono "avenc_aac bitrate=32000 ! rtpmp4apay pt=97" "audio/x-raw,rate=16000,channels=1"
capture speex_nb "speexenc ! rtpspeexpay pt=98" "audio/x-raw,rate=8000,channels=1"
capture speex_wb "speexenc ! rtpspeexpay pt=98" "audio/x-raw,rate=16000,channels=1"
capture speex_nb_2frames "speexenc nframes=2 ! rtpspeexpay pt=98" "audio/x-raw,rate=8000,channels=1"
capture pcmu_8000 "mulawenc ! rtppcmupay" "audio/x-raw,rate=8000,channels=1"
capture pcma_8000 "alawenc ! rtppcmapay" "audio/x-raw,rate=8000,channels=1"
# G.722: 16 kHz audio on an 8000 Hz RTP clock (RFC 3551), as rtpg722pay stamps it.
capture g722_16000 "avenc_g722 ! rtpg722pay" "audio/x-raw,rate=16000,channels=1"
# L16: big-endian PCM; rtpL16pay splits 20 ms buffers over packets of at most its MTU (1400 bytes).
capture l16_8000_mono "audioconvert ! audio/x-raw,format=S16BE ! rtpL16pay" "audio/x-raw,rate=8000,channels=1"
capture l16_16000_mono "audioconvert ! audio/x-raw,format=S16BE ! rtpL16pay" "audio/x-raw,rate=16000,channels=1"
capture l16_48000_stereo "audioconvert ! audio/x-raw,format=S16BE ! rtpL16pay" "audio/x-raw,rate=48000,channels=2" "$STEREO"
