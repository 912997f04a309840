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

# The UI's packages, exactly as locked; skipped when the lock has not changed.
stamp=ui/node_modules/.tether-lock
if [ ! -f "$stamp" ] || ! cmp -s ui/package-lock.json "$stamp"; then
  echo "setup: npm ci in ui/"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  cp ui/package-lock.json "$stamp"
fi
echo "setup: ready"
