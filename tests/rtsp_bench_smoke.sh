#!/usr/bin/env bash
# Smoke test of the benchmark's RTSP-player targets (issue 17): camgate serves the bench's synthetic
# camera as a named stream to 1 and 10 RTSP players over TCP-interleaved RTP and over UDP
# (`camgate-bench suite --quick --targets camgate-rtsp-tcp,camgate-rtsp-udp`, host loopback).
# Passes when every run was measured, no player was lost and loss stayed under 5 %. It checks
# that the harness and the server's RTSP path work, not how fast: speed is in docs/PERFORMANCE.md.
# Uses target/release/camgate and target/release/camgate-bench (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x target/release/camgate-bench ] || [ ! -x target/release/camgate ]; then
  cargo build --release -p camgate -p camgate-bench
fi
TMP=$(mktemp -d /tmp/camgate-rtsp-smoke.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
timeout 300 target/release/camgate-bench suite --quick --no-janus --no-micro --camera synthetic \
  --camgate target/release/camgate --targets camgate-rtsp-tcp,camgate-rtsp-udp --out "$TMP/P.md"
python3 - "$TMP/P.raw.jsonl" <<'PY'
import json, sys
runs = [json.loads(l)["Run"] for l in open(sys.argv[1]) if '"Run"' in l]
bad = [r for r in runs if r.get("error") or r["viewers_lost"] or r["loss_pct"] >= 5 or r["delivered"] == 0]
for r in runs:
    print(f'{r["target"]} {r["n"]} players: loss {r["loss_pct"]:.2f} %, lost {r["viewers_lost"]}, '
          f'{r["pkts_per_viewer_s"]:.0f} pkt/s per player, error {r.get("error")}')
if len(runs) != 4 or bad:
    sys.exit(f"RTSP bench smoke FAILED: {len(runs)} runs, {len(bad)} bad")
print("RTSP bench smoke passed")
PY
