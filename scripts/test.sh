#!/usr/bin/env bash
# camgate's full test run: format, lints, unit/integration tests, release build, then the browser
# tests with real peers (Chromium, the Flashphoner Web SDK, a GStreamer camera).
# Works on a fresh Debian machine as root: installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

section() { printf '\n========== %s ==========\n' "$*"; }

section "Disk"
# A CI run once died of a full disk: show what there was, and keep cargo's footprint small
# (no incremental caches: every run here builds from scratch anyway).
df -h . /tmp 2>/dev/null || true
export CARGO_INCREMENTAL=0

section "System packages"
node_debs=()
# Node.js may come from elsewhere (e.g. NodeSource, which bundles npm): check the commands.
command -v node >/dev/null 2>&1 || node_debs+=(nodejs)
command -v npm >/dev/null 2>&1 || node_debs+=(npm)
# gstreamer1.0-x: the camera's timeoverlay (pango), not pulled in otherwise on a fresh machine.
# Both AAC encoders the tests name: avenc_aac (gstreamer1.0-libav) and voaacenc (gstreamer1.0-plugins-bad).
# The H.265 camera: x265enc (gstreamer1.0-plugins-bad, which pulls libx265) and rtph265pay (-good).
# openssl: the RTSPS browser test makes its camera's certificate with it.
# nftables: ice-tcp.test.mjs drops UDP to camgate in its own network namespace.
# The webrtcbin peer (tests/webrtc_peer.py): webrtcbin in plugins-bad, ICE from gstreamer1.0-nice,
# GstWebRTC/GstSdp bindings from gir1.2-gst-plugins-bad-1.0, avdec_h264/avdec_h265 from -libav.
# php-cli: server/tests/viewer_tokens.rs runs docs/SECURITY.md's PHP token snippet.
# ffmpeg: ffprobe/ffmpeg are RTSP players of camgate's RTSP server (server/tests/rtsp_out.rs).
# The NAT test (nat.test.mjs): coturn (STUN/TURN), iptables (the router's NAT; and
# ice-unreachable.test.mjs's firewall), util-linux's unshare/nsenter (namespaces).
install_debs "${RUST_BUILD_DEBS[@]}" "${node_debs[@]}" chromium firefox-esr iproute2 nftables openssl python3-gi \
  coturn iptables util-linux \
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base \
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-x \
  gstreamer1.0-nice gir1.2-gst-plugins-bad-1.0 vlc-bin vlc-plugin-base ffmpeg php-cli
ensure_rust
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "node $(node --version) is too old: the browser tests need Node.js >= 20" >&2
  exit 1
fi

section "npm ci (tests/browser)"
# Never downloads a browser: the tests use Debian's /usr/bin/chromium through playwright-core.
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

section "cargo fmt --check"
cargo fmt --all --check

section "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test"
cargo test --workspace

section "cargo build --release -p camgate -p camgate-bench"
cargo build --release -p camgate -p camgate-bench

section "Starvation test (camera over UDP)"
# camgate held to 20 % of one core for 60 s under 200 viewers: bounded memory, every viewer back.
tests/starvation.sh

section "Starvation test (camera over TCP-interleaved)"
# The same with the backlog in the camera's send buffer: judged by the media's age.
BENCH_CAMGATE_ARGS="--rtsp-transport tcp" tests/starvation.sh

section "RTSP players in the benchmark (tests/rtsp_bench_smoke.sh)"
# The bench's RTSP-player targets (camgate-rtsp-tcp / -udp), 1 and 10 players: measured, none lost.
tests/rtsp_bench_smoke.sh

# The Rust `retina` RTSP client against camgate's RTSP server. A crate of its own (own workspace
# and Cargo.lock), so retina's tokio stays out of camgate's dependency graph.
section "retina RTSP client (tests/retina-client)"
cargo fmt --manifest-path tests/retina-client/Cargo.toml --check
cargo test --locked --manifest-path tests/retina-client/Cargo.toml

section "Browser tests"
tests/run-browser-tests.sh

section "All tests passed"
