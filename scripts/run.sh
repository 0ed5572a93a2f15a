#!/usr/bin/env bash
# Build and run camgate (release). Arguments go to camgate, e.g.
#   ./scripts/run.sh --announce-ip 192.168.1.10
# then open http://<host>:8081/ (the built-in demo camera is the RTSP server's stream rtsp://127.0.0.1:8554/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

install_debs "${RUST_BUILD_DEBS[@]}" >&2
ensure_rust >&2
exec cargo run --release -p camgate -- "$@"
