#!/usr/bin/env bash
# Browser tests with real peers: camgate, a GStreamer camera and headless Chromium, all inside a
# fresh network namespace that has only loopback (so no packet leaves 127.0.0.0/8 and Chromium's
# ICE cannot pick another interface).
#
#   tests/run-browser-tests.sh                       # every tests/browser/*.test.mjs
#   tests/run-browser-tests.sh player.test.mjs       # some of them (names relative to tests/browser)
#
# Env: CAMGATE_BIN (default ${CARGO_TARGET_DIR:-target}/release/camgate, built if missing),
# CAMGATE_EXTRA_ARGS,
# TEST_REPORTER (default spec). Needs root (or unprivileged user namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${CAMGATE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/camgate}
if [[ ! -x "$BIN" ]]; then
  echo "== $BIN missing: cargo build --release -p camgate"
  cargo build --release -p camgate
fi
export CAMGATE_BIN=$BIN

if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  files=()
  for f in tests/browser/*.test.mjs; do files+=("$(basename "$f")"); done
fi

if [[ $(id -u) -eq 0 ]]; then
  netns=(unshare --net --)
else
  netns=(unshare --user --map-root-user --net --)
fi

echo "== browser tests in a loopback-only network namespace: ${files[*]}"
# --test-timeout also bounds each test FILE as a whole (node runs a file as one test): 300 s, so a
# file of a dozen camera tests (each with its own 60 s limit; the SDK sound tests over every audio
# codec take about 2.5 minutes) does not hit it on a loaded 2-core box.
# shellcheck disable=SC2016 # expanded by the inner bash
exec "${netns[@]}" bash -c '
  set -euo pipefail
  ip link set lo up
  cd tests/browser
  exec node --test --test-concurrency=1 --test-timeout=300000 \
    --test-reporter="${TEST_REPORTER:-spec}" "$@"
' bash "${files[@]}"
