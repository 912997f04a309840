#!/usr/bin/env bash
# Runs every check and test: formatting, lints, the UI's type check and unit tests, the
# desktop shell's build, and the Rust suites (unit and end-to-end against tether-sim with
# real OpenSSH, sshd, PostgreSQL, Redis and a real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Each step says how much disk is left where the build writes: a CI machine's disk can be small,
# and the log should show which step used it up.
step() { printf '\n==> %s (%s free)\n' "$*" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# The processes of this run's suite: those whose environment has TMPDIR set to the run's own
# temporary directory (every child of a test inherits it) or whose command line names it (a
# browser's profile, an agent's profile, a server's data directory). Only this run's: another
# run, or the developer's own Chromium, has neither.
suite_processes() {
  local dir=$1 pattern p pid stat state cmd env seen=" "
  # One pass of grep over every process's command line and environment finds the candidates
  # (the pattern is read from a file, so that grep's own command line does not name the
  # directory); each is then checked exactly.
  pattern=$(mktemp)
  printf '%s\n' "$dir" >"$pattern"
  for p in $(grep -slaF -f "$pattern" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null); do
    p=${p%/*}
    pid=${p#/proc/}
    [[ $pid == "$$" || $seen == *" $pid "* ]] && continue
    seen+="$pid "
    stat=$(cat 2>/dev/null <"$p/stat") || continue
    state=${stat##*')' }
    state=${state%% *}
    [ "$state" = Z ] || [ "$state" = X ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    env=$(tr '\0' '\n' 2>/dev/null <"$p/environ") || env=
    if [[ $cmd == *"$dir"* || $'\n'$env$'\n' == *$'\n'"TMPDIR=$dir"$'\n'* ]]; then
      printf '  %s %s\n' "$pid" "${cmd:0:300}"
    fi
  done
  rm -f "$pattern"
}

# After the suite: nothing of it runs and nothing of it is left in its temporary directory.
# Processes get five seconds to finish exiting. Whatever is found is printed, then ended and
# removed (so a failed run does not leave a browser behind), and the check fails.
check_leftovers() {
  local dir=$1 procs files tries=0
  while procs=$(suite_processes "$dir"); [ -n "$procs" ] && [ $tries -lt 25 ]; do
    sleep 0.2
    tries=$((tries + 1))
  done
  files=$(find "$dir" -mindepth 1 -maxdepth 2 2>/dev/null | sed 's/^/  /' | head -50)
  if [ -z "$procs" ] && [ -z "$files" ]; then
    rmdir "$dir"
    echo "no process of the suite runs, and it left nothing in $dir"
    return 0
  fi
  [ -n "$procs" ] && printf 'processes of the suite still running:\n%s\n' "$procs" >&2
  [ -n "$files" ] && printf 'left behind in %s:\n%s\n' "$dir" "$files" >&2
  if [ -n "$procs" ]; then
    # shellcheck disable=SC2046
    kill -KILL $(printf '%s\n' "$procs" | awk '{print $1}') 2>/dev/null || true
    sleep 1
  fi
  rm -rf -- "$dir"
  echo "the suite must end every process it starts and remove what it creates" >&2
  return 1
}

# TETHER_SUITE_TMP=DIR scripts/test.sh --check-leftovers: only the check above, against DIR
# (named in the environment, so that this script's own command line does not match).
if [ "${1:-}" = --check-leftovers ]; then
  check_leftovers "${TETHER_SUITE_TMP:?names the directory to check}"
  exit
fi

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
# Every temporary file or directory the suite makes lands in a directory of this run's own,
# which is how the check below knows exactly what is the suite's.
# Open to all as /tmp is (sticky): servers the suite runs as another user (PostgreSQL as
# postgres) and tests run as nobody need to reach or create their own directories in it.
suite_tmp=$(mktemp -d "${TMPDIR:-/tmp}/tether-suite.XXXXXX")
chmod 1777 "$suite_tmp"
tests=0
TMPDIR="$suite_tmp" cargo test --workspace --locked --no-fail-fast -- --test-threads="${TETHER_TEST_THREADS:-4}" || tests=$?

step "packages: make package, then lintian, rpm, and an install, upgrade and removal (tests/tests/packages.rs)"
# They install into the system one after another, so one at a time, after the rest.
package_start=$(date +%s)
if scripts/package.sh; then
  # --workspace, not -p tether-e2e: the same packages as the build above, so the same features
  # of every dependency, and nothing is compiled a second time.
  TMPDIR="$suite_tmp" cargo test --workspace --test packages --locked -- --ignored --test-threads=1 --nocapture || tests=$?
else
  tests=1
fi
echo "packages: $(( $(date +%s) - package_start )) s"

step "the suite left nothing running and nothing behind"
leftovers=0
check_leftovers "$suite_tmp" || leftovers=1
[ "$tests" -eq 0 ] || exit "$tests"
[ "$leftovers" -eq 0 ] || exit 1

step "the UI's types are those generated from the Rust ones"
# cargo test (ts-rs) rewrites ui/src/backend/generated from src-tauri/src/view.rs.
if ! git diff --quiet -- ui/src/backend/generated || [ -n "$(git ls-files --others --exclude-standard ui/src/backend/generated)" ]; then
  git status --short ui/src/backend/generated
  echo "ui/src/backend/generated differs from the Rust types: commit what cargo test generated" >&2
  exit 1
fi

step "all checks passed in $(( $(date +%s) - start )) s"
