# Sourced by scripts/test.sh and scripts/run.sh: install missing Debian packages (as root, or via
# sudo), quickly: nothing is fetched when everything is already there.

missing_debs() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
  done
}

install_debs() {
  local -a need
  mapfile -t need < <(missing_debs "$@")
  if [[ ${#need[@]} -eq 0 ]]; then
    echo "all present: $*"
    return 0
  fi
  echo "installing: ${need[*]}"
  local -a sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
}

# What the Rust build needs (C toolchain for ring, codec libraries and OpenSSL for DTLS through
# pkg-config).
RUST_BUILD_DEBS=(build-essential pkg-config libopus-dev libspeex-dev libspandsp-dev libssl-dev ca-certificates curl)

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH=$HOME/.cargo/bin:$PATH
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo missing: installing a Rust toolchain with rustup (stable, minimal + clippy, rustfmt)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y --profile minimal --component clippy,rustfmt
    export PATH=$HOME/.cargo/bin:$PATH
  fi
}
