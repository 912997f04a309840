#!/usr/bin/env bash
# `make bench`: Tether's speed and memory targets, each against a baseline measured in the same
# run on the same machine, through the local platform (tether-sim, release builds):
#   1. the refresh hook (`ssh-cert:load --refresh-only`) on a fresh certificate, against `true`;
#   2. plain ssh through the written config running `true`, with the hook against without it;
#   3. `tether ssh -- true` against plain ssh to the same app;
#   4. the idle agent's memory (RSS, PSS, private anonymous, from /proc/PID/smaps_rollup);
#   5. tunnels: throughput one way and both ways at once, latency, the client's CPU time and
#      time to open, against OpenSSH's ssh -L (scripts/bench-tunnels.sh);
#   6. the desktop app's memory and launch time, against an empty Tauri tray app
#      (scripts/bench-desktop.sh).
# Everything runs in a throwaway HOME on loopback and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
keep_toolchain
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing: run scripts/setup.sh" >&2; exit 1; }
runs="${BENCH_RUNS:-40}"

# Everything is built first, while HOME is still the caller's (the desktop step too).
echo "==> building (release)"
cargo build --release --locked --bin tether --bin tether-sim --bin tether-loadgen
BENCH_BUILD_ONLY=1 scripts/bench-desktop.sh
repo="$PWD"
tether="$repo/target/release/tether"

state=$(mktemp -d /tmp/tether-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

# A user of our own: nothing of the caller's home, keyring or agent is touched.
export HOME="$state/home" XDG_RUNTIME_DIR="$state/run" TETHER_TOKEN_STORE=file
unset XDG_DATA_HOME TETHER_DATA_DIR TETHER_TOKEN PLATFORMSH_CLI_TOKEN UPSUN_CLI_TOKEN
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"

start_demo_sim "$repo/target/release/tether-sim" "$tether"
"$tether" config:ssh --write >/dev/null 2>&1
project=rjify4yjcwxaa
host=$("$tether" ssh -p "$project" -e main --pipe)
with_hook=$(ls "$HOME"/.local/share/tether/ssh/*.config)
without_hook="$state/without-hook.config"
grep -v '^Match ' "$with_hook" >"$without_hook"
grep -q '^Match ' "$with_hook" || { echo "bench: the session config has no Match exec hook" >&2; exit 1; }
ssh_base=(ssh -o BatchMode=yes)

bench() { # name, json, commands...
  local json="$state/$1.json"; shift
  hyperfine -N --warmup 3 --runs "$runs" --style basic --export-json "$json" "$@" >/dev/null
}
echo "==> 1. refresh hook vs true"
bench hook "$tether ssh-cert:load --refresh-only --quiet" "true"
echo "==> 2. plain ssh with the hook vs without"
bench plain "ssh -o BatchMode=yes -F $with_hook $host true" "ssh -o BatchMode=yes -F $without_hook $host true"
echo "==> 3. tether ssh vs plain ssh"
bench tssh "$tether ssh -p $project -e main -- true" "ssh -o BatchMode=yes -F $with_hook $host true"

echo "==> 4. idle agent memory"
"$tether" agent 2>"$state/agent.log" &
agent=$!
pids+=($agent)
for _ in $(seq 1 50); do "$tether" agent:status >/dev/null 2>&1 && break; sleep 0.1; done
sleep 3
cp "/proc/$agent/smaps_rollup" "$state/smaps"

python3 - "$state" <<'PY'
import json, sys
state = sys.argv[1]
def medians(name):
    r = json.load(open(f"{state}/{name}.json"))["results"]
    return [x["median"] * 1000 for x in r]
rows = []
def row(what, a, b, base, target):
    ratio = a / b if b else float("inf")
    rows.append((what, a, base, b, ratio, target))
h = medians("hook"); row("refresh hook, fresh certificate", h[0], h[1], "true", "median <= 10 ms")
p = medians("plain"); row("plain ssh true, with hook", p[0], p[1], "without hook", "<= 1.15x")
t = medians("tssh"); row("tether ssh -- true", t[0], t[1], "plain ssh", "<= 1.15x")
print(f"\n{'measure':34} {'median':>9}   {'baseline':14} {'median':>9} {'ratio':>6}   target")
for what, a, base, b, ratio, target in rows:
    print(f"{what:34} {a:7.1f}ms   {base:14} {b:7.1f}ms {ratio:5.2f}x   {target}")
mem = {}
for line in open(f"{state}/smaps"):
    parts = line.split()
    if len(parts) >= 3 and parts[2] == "kB":
        mem[parts[0].rstrip(":")] = int(parts[1])
private = mem.get("Private_Dirty", 0) + mem.get("Private_Clean", 0)
print(f"\nidle agent: RSS {mem.get('Rss',0)/1024:.1f} MB, PSS {mem.get('Pss',0)/1024:.1f} MB, "
      f"private anonymous {mem.get('Anonymous',0)/1024:.1f} MB, private total {private/1024:.1f} MB "
      f"(target: private anonymous <= 10 MB)")
PY

"$tether" agent:stop >/dev/null 2>&1 || true
echo
echo "==> 5. tunnels"
scripts/bench-tunnels.sh
BENCH_SKIP_BUILD=1 scripts/bench-desktop.sh
