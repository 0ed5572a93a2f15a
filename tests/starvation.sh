#!/usr/bin/env bash
# The starvation test (issue 19): camgate serves viewers of a 4 Mbit/s camera (benches' synthetic
# camera and str0m viewers, on loopback) while a CFS quota holds it to 20 % of one core for 60 s;
# then the quota is lifted. Passes when camgate's RSS stayed under the bound and every viewer is
# back at the camera's full rate within 10 s, none dropped. Bounded (~80 s), removes its cgroup.
#
#   tests/starvation.sh [--viewers N] [--starve-secs S] [--rss-bound-mb B] ...
#
# Needs root and a cpu cgroup controller (cgroup v1 /sys/fs/cgroup/cpu, or v2 cpu.max).
# Uses target/release/camgate and target/release/camgate-bench (built here if missing: set
# CAMGATE_BIN to test another camgate binary).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "starvation test SKIPPED: needs root (cgroups)" >&2
  exit 0
fi
if [ ! -w /sys/fs/cgroup/cpu ] && ! grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  echo "starvation test SKIPPED: no writable cpu cgroup controller" >&2
  exit 0
fi
CAMGATE_BIN=${CAMGATE_BIN:-target/release/camgate}
if [ ! -x target/release/camgate-bench ] || [ ! -x "$CAMGATE_BIN" ]; then
  cargo build --release -p camgate -p camgate-bench
fi
# The harness removes its cgroup itself; this is for when it is killed (the timeout, ^C): the
# camgate it started is still in the group, so end it and remove the group.
cleanup() {
  for g in /sys/fs/cgroup/cpu/camgate-starve-"$BASHPID"-* /sys/fs/cgroup/camgate-starve-"$BASHPID"-*; do
    [ -d "$g" ] || continue
    xargs -r kill -9 <"$g/cgroup.procs" 2>/dev/null || true
    sleep 0.5
    rmdir "$g" 2>/dev/null || true
  done
}
trap cleanup EXIT
# The issue's load: 200 viewers of a 4 Mbit/s camera, RSS bound 400 MB (measured peaks 116-130 MB
# on a quiet 2-core box). The camera goes over UDP (camgate's default `auto` picks it): the stall's
# backlog waits in the camera socket's receive queue, which camgate must skip to the next keyframe
# rather than relay as stale video (camgate_camera_backlog_skips_total, printed). Over TCP the
# backlog waits mostly in the camera's own send buffer, out of camgate's sight: there camgate drops
# media that arrives over 2 s late (core/src/camera_lag.rs); BENCH_CAMGATE_ARGS="--rtsp-transport tcp"
# runs it so (scripts/test.sh runs both).
# Extra arguments go to the harness (e.g. --viewers 50 on a slower box).
BENCH_CAMGATE_ARGS="${BENCH_CAMGATE_ARGS:---rtsp-transport udp}" CAMGATE_STARVE_TAG=$BASHPID \
  timeout 300 target/release/camgate-bench starve --camgate "$CAMGATE_BIN" \
  --viewers 200 --mbps 4 --quota-pct 20 --starve-secs 60 --rss-bound-mb 400 "$@"
