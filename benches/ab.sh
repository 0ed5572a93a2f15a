#!/usr/bin/env bash
# A/B of camgate binaries on one benchmark cell with the current harness, runs interleaved (A B A B …), so that a
# slow spell on the box lands on both. Root only (private network namespace, as benches/run.sh).
#
#   benches/ab.sh OUTDIR ROUNDS VIEWERS LABEL=BINARY...
#   benches/ab.sh /tmp/ab 3 100 old=/path/to/old/camgate main=target/release/camgate main_s=target/release/camgate
#
# Synthetic camera, 2 Mbit/s. A label ending in `_u` runs unpinned with 2 workers (`--server-cpus 0,1
# --loadgen-cpus 0,1`, as the 2026-12-02 runs did); otherwise the defaults (1 worker on CPU 0, load generator on
# CPU 1). A label ending in `_s` keeps a SCHED_IDLE spinner on CPU 0, so that CPU never halts when idle (the
# idle wake-up cost, see benches/ANALYSIS.md). Old binaries that lack `--rtsp-server` are run through a wrapper
# that drops that flag. With `perf` installed, the server's syscalls are counted for 5 s inside each window.
# Prints one line per run; each label's raw results are in OUTDIR/LABEL.raw.jsonl.
set -euo pipefail
if [ "${1:-}" != --inner ]; then
	[ "$(id -u)" -eq 0 ] || { echo "root needed (network namespace)" >&2; exit 1; }
	exec unshare --net -- "$(realpath "$0")" --inner "$@"
fi
shift
ip link set lo up
out=$1 rounds=$2 count=$3
shift 3
mkdir -p "$out"
bench=${BENCH_BIN:-$(dirname "$(realpath "$0")")/../target/release/camgate-bench}
for lb in "$@"; do
	label=${lb%%=*} bin=$(realpath "${lb#*=}")
	# The wrapper: `--rtsp-server VALUE` dropped when the binary does not know the flag (33069d6 and older).
	if ! "$bin" --help 2>/dev/null | grep -q -- --rtsp-server; then
		printf '#!/bin/bash\nargs=(); skip=0\nfor a in "$@"; do\n  if [ $skip = 1 ]; then skip=0; continue; fi\n  if [ "$a" = --rtsp-server ]; then skip=1; continue; fi\n  args+=("$a")\ndone\nexec %q "${args[@]}"\n' "$bin" >"$out/$label.wrap"
		chmod +x "$out/$label.wrap"
	fi
done
for r in $(seq 1 "$rounds"); do
	for lb in "$@"; do
		label=${lb%%=*} bin=$(realpath "${lb#*=}")
		run=$bin
		[ -e "$out/$label.wrap" ] && run=$out/$label.wrap
		pin=()
		case $label in *_u) pin=(--server-cpus 0,1 --loadgen-cpus 0,1) ;; esac
		spinner=
		case $label in *_s) chrt --idle 0 taskset -c 0 sh -c 'while :; do :; done' & spinner=$! ;; esac
		perf_pid=
		if command -v perf >/dev/null; then
			(
				for _ in $(seq 1 300); do
					pid=$(pgrep -f -- "^$bin " | head -1) && break
					sleep 0.2
				done
				[ -n "${pid:-}" ] || exit 0
				sleep 10
				perf stat -e raw_syscalls:sys_enter,context-switches,task-clock,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait \
					-p "$pid" -- sleep 5 2>"$out/$label.perf.$r"
			) &
			perf_pid=$!
		fi
		nice -n -20 "$bench" suite --camgate "$run" --no-janus --camera synthetic --counts "$count" --bitrates 2 \
			--rounds 1 --targets camgate --no-micro "${pin[@]}" --out "$out/$label.md" >/dev/null 2>"$out/$label.err" || true
		if [ -n "$spinner" ]; then kill "$spinner"; fi
		if [ -n "$perf_pid" ]; then wait "$perf_pid" || true; fi
		grep '"Run"' "$out/$label.raw.jsonl" | tail -1 | LABEL=$label python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())["Run"]
print("%s round %s: %d viewers, %d worker(s): %.2f us/pkt (kernel %.2f), server CPU %.1f %%, load generator %.1f %%, other %.1f %%, %.1f pkt/s per viewer, loss %.2f %%, voluntary switches %.0f/s%s"
      % (os.environ["LABEL"], sys.argv[1], r["n"], r["workers"], r["us_per_pkt"], r["us_per_pkt_kernel"], r["server_cpu_pct"],
         r["loadgen_cpu_pct"], r["other_cpu_pct"], r["pkts_per_viewer_s"], r["loss_pct"], r["server_vcsw_s"],
         ", error " + r["error"] if r["error"] else ""))' "$r"
		if [ -s "$out/$label.perf.$r" ]; then
			awk '/sys_enter|context-sw/ { printf "  %s %s", $2, $1 } /task-clock/ { printf "  task-clock-ms %s", $1 } END { print "" }' "$out/$label.perf.$r"
		fi
	done
done
