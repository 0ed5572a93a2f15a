#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, one after the other, on stable Rust.
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# Env: FUZZ_KEEP_GOING=1 (fork mode: go on after a crash, collecting every crash file),
# FUZZ_JOBS (parallel fuzzing processes per target, default 1), FUZZ_ASAN=1 (build with
# AddressSanitizer through RUSTC_BOOTSTRAP=1; the default is --sanitizer none, which works on
# stable and still catches panics, hangs and out-of-memory). Crashes land in
# fuzz/artifacts/<target>/ and are replayed by `cargo test -p camgate-core --test fuzz_regressions`
# (the web side's http_request, websocket and rest_body: `cargo test -p camgate --test fuzz_regressions`).
# A summary line per target (executions, exec/s, corpus size, crash files) goes to
# fuzz/run-all.summary.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(rtsp_framing rtsp_client camera_sdp rtp_parse h264_relay h265_relay h264_depacketize signaling rtsp_url
    vp8_relay audio_transcode rtcp rtp_reorder h264_slice camera_udp stun_username rtsp_server viewer_token http_request websocket rest_body)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if [ "${FUZZ_ASAN:-0}" = 1 ]; then
  export RUSTC_BOOTSTRAP=1
  sanitizer=(--sanitizer address)
else
  sanitizer=(--sanitizer none)
fi
[ -d corpus/rtsp_client ] || ./seed-corpus.sh

cargo fuzz build "${sanitizer[@]}" || exit 1
: > run-all.summary
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  # A target added after seed-corpus.sh ran starts from its committed seeds.
  cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null
  log="artifacts/$t.log"
  jobs=()
  if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    # Keep fuzzing after a crash (fork mode) to collect more than the first finding.
    jobs=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    # libFuzzer then writes one fuzz-N.log per job into the current directory.
    jobs+=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  fi
  echo "== $t for ${secs}s"
  # -rss_limit_mb: a parser must not need more than this for any input (unbounded growth);
  # -timeout: one input taking longer is a hang.
  cargo fuzz run "${sanitizer[@]}" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len=8192 \
    -print_final_stats=1 "${jobs[@]}" >"$log" 2>&1
  rc=$?
  [ "${FUZZ_JOBS:-1}" -gt 1 ] && cat fuzz-*.log >>"$log" && rm -f fuzz-*.log
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | paste -sd+ | bc)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | paste -sd+ | bc)
  if [ -z "$execs" ]; then # fork mode prints no final stats: take the last status line
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    [ -n "$execs" ] && rate=$((execs / secs))
  fi
  crashes=$(find "artifacts/$t" -type f | wc -l)
  line="$t: rc=$rc execs=${execs:-?} exec/s=${rate:-?} corpus=$(find "corpus/$t" -type f | wc -l) crash_files=$crashes"
  echo "$line" | tee -a run-all.summary
  [ "$rc" = 0 ] && [ "$crashes" = 0 ] || status=1
done
exit $status
