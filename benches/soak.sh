#!/usr/bin/env bash
# The soak run (issue 7), bounded and on loopback only: 5 viewers keep playing a synthetic
# 2 Mbit/s camera while 1000 more viewers join and leave and 100 other cameras are pulled and
# terminated over REST; then camgate's RSS is compared with before the churn, and the 5 viewers
# must still be receiving. Exits non-zero if any cycle failed or a steady viewer stalled.
#
#   benches/soak.sh           # 1000 viewer cycles, 100 camera cycles (~30 s)
#   benches/soak.sh --quick   # 100 and 10
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p camgate -p camgate-bench
exec timeout 900 target/release/camgate-bench soak --camgate target/release/camgate "$@"
