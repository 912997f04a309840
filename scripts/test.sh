#!/usr/bin/env bash
# Runs every check and test: formatting, lints, the UI's type check and unit tests, the
# desktop shell's build, and the Rust suites (unit and end-to-end against tether-sim with
# real OpenSSH, sshd, PostgreSQL, Redis and a real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "UI: type check, unit tests, build"
(cd ui && npm run --silent check && npx vitest run && npm run --silent build)

step "cargo fmt --check"
cargo fmt --all --check

step "build (workspace, all targets, including the desktop shell)"
cargo build --workspace --all-targets --locked

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit and end-to-end)"
export TETHER_SCREENSHOTS="${TETHER_SCREENSHOTS:-$PWD/target/screenshots}"
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TETHER_TEST_THREADS:-4}"

step "the UI's types are those generated from the Rust ones"
# cargo test (ts-rs) rewrites ui/src/backend/generated from src-tauri/src/view.rs.
if ! git diff --quiet -- ui/src/backend/generated || [ -n "$(git ls-files --others --exclude-standard ui/src/backend/generated)" ]; then
  git status --short ui/src/backend/generated
  echo "ui/src/backend/generated differs from the Rust types: commit what cargo test generated" >&2
  exit 1
fi

step "all checks passed in $(( $(date +%s) - start )) s"
