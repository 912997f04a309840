#!/usr/bin/env bash
# Installs everything `make demo` and `make test` need on a fresh Debian/Ubuntu machine:
# system packages (apt), the Rust tools (cargo install), and the UI's packages (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-system.sh

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing. Install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

# tauri-driver: the WebDriver front for the desktop app's end-to-end tests.
if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "setup: installing tauri-driver"
  cargo install tauri-driver --locked --quiet
fi

# A directory's npm packages, exactly as locked; skipped when the lock has not changed.
npm_ci() {
  local stamp=$1/node_modules/.tether-lock
  if [ ! -f "$stamp" ] || ! cmp -s "$1/package-lock.json" "$stamp"; then
    echo "setup: npm ci in $1/"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$1/package-lock.json" "$stamp"
  fi
}
# The UI's packages.
npm_ci ui
# The Tauri CLI that bundles the .deb and .rpm (make package): npm's is prebuilt, where
# `cargo install tauri-cli` would compile for minutes.
npm_ci packaging
echo "setup: ready"
