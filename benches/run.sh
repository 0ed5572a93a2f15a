#!/usr/bin/env bash
# The benchmark, by one command: builds release, runs the in-process micro-benchmark and the
# network benchmark (RTSP camera replaying a GStreamer x264 recording → camgate / Janus 1.1.2 →
# N str0m WebRTC viewers), and writes docs/PERFORMANCE.md plus its raw numbers
# docs/PERFORMANCE.raw.jsonl (`camgate-bench report` regenerates the tables from them).
#
#   benches/run.sh                      # N = 1, 10, 100, 300 at 2 and 4 Mbit/s, 3 rounds each, camgate, Janus, camgate with AAC audio
#   benches/run.sh --rounds 3 --counts 1,10,100 --bitrates 2 --search   # plus the multi-core search
#   benches/run.sh --quick              # N = 1, 10 at 2 Mbit/s, one round (smoke)
#   benches/run.sh --rev HEAD           # benchmark a clean checkout of a commit (git worktree), not the working tree
#   benches/run.sh --no-janus --targets camgate,camgate-rtsp-tcp,camgate-rtsp-udp --counts 1,10,100,300 --bitrates 2
#                                       # RTSP players (TCP-interleaved / UDP) next to WebRTC viewers of the same camgate
# Targets (--targets): camgate, janus, camgate-aac (AAC camera, Opus to viewers), camgate-tcp (viewers on
# ICE-TCP), camgate-rtsp-tcp / camgate-rtsp-udp (camgate serves the camera as a named stream from its RTSP
# server to N RTSP players, benches/src/players.rs). BENCH_CALLGRIND=FILE runs camgate under callgrind and
# reports instructions per delivered packet for the window (its CPU columns are then valgrind's).
# Extra arguments go to `camgate-bench suite` (--no-janus, --counts, --bitrates, --rounds, --window,
# --search, --search-only, --search-max, --camera x264|synthetic, --server-cpus, --loadgen-cpus, --out FILE).
# Exits non-zero if any run failed (its row is in the report, marked failed), or if Janus was
# asked for and cannot be run.
#
# Everything runs inside a private network namespace (root needed for it; without root the
# benchmark runs on the host loopback, camgate only): Janus gathers no ICE candidates on a
# LOOPBACK-flagged interface, so the namespace gets an ifb device holding 127.0.0.2/32 and
# Janus is told to use it. No packet leaves 127.0.0.0/8.
set -euo pipefail

# With autogroup scheduling (kernel.sched_autogroup_enabled = 1) `nice` ranks processes only
# within their session, and each session competes as one: the `nice -n -20` below would not put
# the server and the load generator ahead of other sessions' builds. So the benchmark runs in a
# session of its own whose autogroup gets nice -20 (root only; otherwise it stays at 0, and the
# report's busy-machine columns say what the other work took).
if [ -z "${CAMGATE_BENCH_SESSION:-}" ] && [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0)" = 1 ] &&
	command -v setsid >/dev/null; then
	export CAMGATE_BENCH_SESSION=1
	exec setsid -w "$(realpath "$0")" "$@"
fi
echo -20 >/proc/self/autogroup 2>/dev/null || true
cd "$(dirname "$0")/.."

ROOT=$PWD
BIN=$ROOT/target/release
if [ "${1:-}" = "--rev" ]; then
	REV=$2
	shift 2
	WT=$(mktemp -d /tmp/camgate-bench-rev.XXXXXX)
	git worktree add --detach "$WT" "$REV" >/dev/null
	trap 'git -C "$ROOT" worktree remove --force "$WT"' EXIT
	(cd "$WT" && CARGO_TARGET_DIR="$ROOT/target/bench-rev" cargo build --release -p camgate -p camgate-bench)
	BIN=$ROOT/target/bench-rev/release
	export BENCH_REV_LABEL="$(git rev-parse --short "$REV") (clean worktree)"
else
	cargo build --release -p camgate -p camgate-bench
fi
set -- --camgate "$BIN/camgate" "$@"
export BIN
want_janus=1
for a in "$@"; do
	[ "$a" = "--no-janus" ] && want_janus=0
done
# The recorded camera needs x264enc (-ugly) and timeoverlay (gstreamer1.0-x, which a fresh machine
# lacks: every cell then failed at once); installed here when root.
if [ "$(id -u)" -eq 0 ] && ! { gst-inspect-1.0 x264enc && gst-inspect-1.0 timeoverlay; } >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y gstreamer1.0-tools gstreamer1.0-plugins-ugly gstreamer1.0-x >/dev/null 2>&1 || true
fi
if ! { gst-inspect-1.0 x264enc && gst-inspect-1.0 timeoverlay; } >/dev/null 2>&1 && ! printf '%s\n' "$@" | grep -qx synthetic; then
	echo "GStreamer x264enc and timeoverlay are needed to record the camera stream (or pass --camera synthetic)" >&2
	exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
	if [ $want_janus = 1 ]; then
		echo "not root: no network namespace, so no Janus; pass --no-janus to run camgate alone" >&2
		exit 1
	fi
	exec timeout 3600 "$BIN/camgate-bench" suite "$@"
fi
if [ $want_janus = 1 ] && ! command -v janus >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y janus >/dev/null 2>&1 || {
		echo "janus could not be installed; pass --no-janus to run camgate alone" >&2
		exit 1
	}
fi

# nice -20: the box may be shared (other builds and tests); the server and the load generator should
# get the CPU first. The figures report the CPU other processes still used during each window.
timeout 7200 nice -n -20 unshare --net -- bash -c '
	ip link set lo up
	if ! { ip link add d0 type ifb && ip addr add 127.0.0.2/32 dev d0 && ip link set d0 up; }; then
		echo "no ifb device: Janus would have no ICE candidate" >&2
		exit 1
	fi
	exec "$BIN/camgate-bench" suite "$@"
' bench "$@"
