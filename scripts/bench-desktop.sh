#!/usr/bin/env bash
# The desktop part of `make bench`: the release app (tether-desktop) against an empty Tauri 2
# tray app (bench/empty-tray: one tray icon, a one-item menu, no window), built in release in
# the same run, both on a private desktop (Xvfb and a D-Bus session bus of our own, whose
# StatusNotifierWatcher, tether-tray-probe, plays the desktop shell's panel):
#   1. time from launch to the tray icon registered (RegisterStatusNotifierItem received by the
#      watcher), median of BENCH_LAUNCH_RUNS launches each after a warm-up;
#   2. memory summed over each app's process tree (WebKit's processes included): RSS, PSS and
#      private anonymous (`Anonymous:` of /proc/PID/smaps_rollup), after BENCH_SETTLE seconds in
#      each state: (a) idle in the tray with no window, (b) with the window open (the tray's
#      "Open Tether…", over dbusmenu), (c) after the window is closed again (WM_DELETE_WINDOW,
#      as a window manager asks), (d) idle with five tunnels open (the empty app: (a) only).
# Loopback only; a throwaway HOME; everything stops by itself. Called by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
keep_toolchain
repo="$PWD"
bin="$repo/target/release"
runs="${BENCH_LAUNCH_RUNS:-5}"
settle="${BENCH_SETTLE:-3}"
for tool in Xvfb dbus-daemon xdotool python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done

# BENCH_SKIP_BUILD=1 measures the binaries already built; BENCH_BUILD_ONLY=1 builds them and
# stops (scripts/bench.sh builds everything before it changes HOME).
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  echo "==> desktop: building the desktop app and the empty tray app (release)"
  [ -f ui/dist/index.html ] || (cd ui && npm run build)
  cargo build --release --locked --bin tether --bin tether-sim
  cargo build --release --locked -p tether-desktop
  cargo build --release --locked -p tether-e2e --bin tether-tray-probe
  CARGO_TARGET_DIR="$repo/target/empty-tray" cargo build --release --locked \
    --manifest-path bench/empty-tray/Cargo.toml
fi
[ -z "${BENCH_BUILD_ONLY:-}" ] || exit 0
app_bin="$bin/tether-desktop"
empty_bin="$repo/target/empty-tray/release/empty-tray"
probe="$bin/tether-tray-probe"
tether="$bin/tether"

state=$(mktemp -d /tmp/tether-bench-desktop.XXXXXX)
pids=()
app=""
cleanup() {
  local status=$?
  [ -n "$app" ] && kill -- "-$app" 2>/dev/null || true
  stop_probe
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$status" = 0 ]; then rm -rf "$state"; else echo "bench: failed; its files are in $state" >&2; fi
}
stop_probe() {
  if [ -n "${PROBE_PID:-}" ]; then
    local p=$PROBE_PID
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

# A user of our own, on a display and a session bus of our own.
export HOME="$state/home" XDG_RUNTIME_DIR="$state/run" TETHER_TOKEN_STORE=file
unset XDG_DATA_HOME XDG_CONFIG_HOME XDG_CACHE_HOME XDG_STATE_HOME TETHER_DATA_DIR TETHER_TOKEN \
  PLATFORMSH_CLI_TOKEN UPSUN_CLI_TOKEN WAYLAND_DISPLAY
export GDK_BACKEND=x11 NO_AT_BRIDGE=1
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"

Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$state/display" 2>"$state/xvfb.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$state/display" ] && break; sleep 0.1; done
[ -s "$state/display" ] || { cat "$state/xvfb.log" >&2; exit 1; }
export DISPLAY=":$(head -n1 "$state/display")"
dbus-daemon --session --nofork --nosyslog --address="unix:path=$state/run/bus" \
  --print-address=3 3>"$state/bus" >"$state/dbus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$state/bus" ] && break; sleep 0.1; done
[ -s "$state/bus" ] || { cat "$state/dbus.log" >&2; exit 1; }
export DBUS_SESSION_BUS_ADDRESS="unix:path=$state/run/bus"

start_demo_sim "$bin/tether-sim" "$tether"

# Memory of a process and all its descendants: `LABEL procs Rss Pss Anonymous Private` (kB),
# then each process's name and private anonymous MB.
cat >"$state/mem.py" <<'PY'
import os, sys
label, root = sys.argv[1], int(sys.argv[2])
parent, names = {}, {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    names[int(pid)] = stat[stat.index("(") + 1:stat.rindex(")")]
    parent[int(pid)] = int(stat[stat.rindex(")") + 2:].split()[1])
tree, grew = {root}, True
while grew:
    more = {p for p, pp in parent.items() if pp in tree} - tree
    tree |= more
    grew = bool(more)
total = {"Rss": 0, "Pss": 0, "Anonymous": 0, "Private": 0}
seen = []
for pid in sorted(tree):
    try:
        lines = open(f"/proc/{pid}/smaps_rollup").read().splitlines()
    except OSError:
        continue
    anon = 0
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "kB":
            key = parts[0].rstrip(":")
            if key in total:
                total[key] += int(parts[1])
            if key in ("Private_Clean", "Private_Dirty"):
                total["Private"] += int(parts[1])
            if key == "Anonymous":
                anon = int(parts[1])
    seen.append(f"{names.get(pid, '?')}={anon / 1024:.1f}")
print(label, len(seen), total["Rss"], total["Pss"], total["Anonymous"], total["Private"], " ".join(seen))
PY
sample() { # label, pid
  sleep "$settle"
  python3 "$state/mem.py" "$1" "$2" >>"$state/mem"
}

# The app's visible top-level windows (none, without a window manager, once it hides or
# destroys them).
windows() { xdotool search --onlyvisible --pid "$1" 2>/dev/null || true; }
wait_windows() { # pid, "some" | "none", seconds
  local end=$((SECONDS + $3)) w
  while [ $SECONDS -le $end ]; do
    w=$(windows "$1")
    if { [ "$2" = some ] && [ -n "$w" ]; } || { [ "$2" = none ] && [ -z "$w" ]; }; then return 0; fi
    sleep 0.1
  done
  echo "bench: the app's windows are not $2 after $3 s" >&2
  return 1
}

# The tray watcher, driven a command a line (tether-tray-probe serve); `ask` leaves its answer
# in $reply. One watcher per app: it remembers the items registered with it.
start_probe() {
  coproc PROBE { exec "$probe" serve 2>>"$state/probe.log"; }
}
ask() {
  echo "$*" >&"${PROBE[1]}"
  local line
  read -r -t 120 line <&"${PROBE[0]}" || { echo "bench: the tray probe did not answer: $*" >&2; return 1; }
  case $line in
    "ok"*) reply=${line#ok}; reply=${reply# } ;;
    *) echo "bench: $*: $line" >&2; return 1 ;;
  esac
}
launch() { # log, command...: starts an app in a process group of its own, in $app
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  app=$!
}
quit() { # menu label
  ask click "$1"
  # The app, then what it started (WebKit's network process leaves once it is alone).
  for _ in $(seq 1 150); do kill -0 -- "-$app" 2>/dev/null || break; sleep 0.1; done
  kill -s KILL -- "-$app" 2>/dev/null || true
  wait "$app" 2>/dev/null || true
  app=""
  stop_probe
}

echo "==> desktop: launch to tray, empty tray app vs tether-desktop ($runs launches each, after a warm-up)"
timeout 300 "$probe" launch-time "$runs" -- "$empty_bin" >"$state/launch-empty" 2>"$state/launch-empty.log"
timeout 300 "$probe" launch-time "$runs" -- "$app_bin" --hidden >"$state/launch-app" 2>"$state/launch-app.log"

echo "==> desktop: memory of the empty tray app, idle"
start_probe
launch "$state/empty.log" "$empty_bin"
ask wait-item 60
ask wait-menu 30 Quit
[ -z "$(windows "$app")" ] || echo "bench: the empty tray app shows a window" >&2
sample empty "$app"
quit Quit

echo "==> desktop: memory of tether-desktop --hidden: (a) idle, (b) window open, (c) closed, (d) tunnels"
start_probe
launch "$state/app.log" "$app_bin" --hidden
ask wait-item 60
# The menu is rebuilt once the hosted agent answers: signed in, no tunnels.
ask wait-menu 30 No tunnels open
opened_at_start=""
[ -z "$(windows "$app")" ] || opened_at_start=yes
sample a "$app"
ask click "Open Tether…"
wait_windows "$app" some 30
sample b "$app"
# shellcheck disable=SC2046
python3 scripts/close-window.py $(windows "$app")
wait_windows "$app" none 30
sample c "$app"
"$tether" tunnel:open -p jyu7waly36ncj -e main >/dev/null 2>>"$state/tunnels.log"
"$tether" tunnel:open -p jyu7waly36ncj -e staging >/dev/null 2>>"$state/tunnels.log"
"$tether" tunnel:open -p rjify4yjcwxaa -e main >/dev/null 2>>"$state/tunnels.log"
tunnels=$("$tether" tunnel:list --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
ask wait-menu 30 Close all tunnels
sample d "$app"
"$tether" tunnel:close --all -y >/dev/null 2>&1 || true
quit "Quit Tether"

python3 - "$state" "$tunnels" "$opened_at_start" <<'PY'
import sys
state, tunnels, opened_at_start = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes"
def median(name):
    for line in open(f"{state}/launch-{name}"):
        if line.startswith("median "):
            return float(line.split()[1])
mem = {}
for line in open(f"{state}/mem"):
    label, procs, rss, pss, anon, private, names = line.split(maxsplit=6)
    mem[label] = (int(procs), int(rss) / 1024, int(pss) / 1024, int(anon) / 1024, int(private) / 1024, names.strip())
rows = [("empty", "empty tray app, idle (baseline)"),
        ("a", "(a) tether, idle in the tray" + (" [window open: no --hidden?]" if opened_at_start else "")),
        ("b", "(b) tether, window open"),
        ("c", "(c) tether, window closed again"),
        ("d", f"(d) tether, {tunnels} tunnels open")]
print("\nDesktop memory in MB, summed over the app's process tree, from /proc/PID/smaps_rollup: "
      "anon = `Anonymous:` (private anonymous),\nprivate = Private_Clean + Private_Dirty")
print(f"{'state':46} {'procs':>5} {'RSS':>7} {'PSS':>7} {'anon':>7} {'private':>8}   anon of each process")
for key, what in rows:
    p, rss, pss, anon, private, names = mem[key]
    print(f"{what:46} {p:5} {rss:7.1f} {pss:7.1f} {anon:7.1f} {private:8.1f}   {names}")
e, a, b, c, d = (mem[k] for k in ("empty", "a", "b", "c", "d"))
def diff(x, y, what, target=None):
    delta = [x[i] - y[i] for i in (1, 2, 3)]
    goal = "" if target is None else \
        f"   target: anon <= +{target} MB: {'ok' if delta[2] <= target else 'OVER'}"
    print(f"{what:40} RSS {delta[0]:+7.1f}  PSS {delta[1]:+7.1f}  anon {delta[2]:+7.1f} MB{goal}")
print()
diff(a, e, "(a) idle in the tray - empty app", 15)
diff(d, e, f"(d) {tunnels} tunnels - empty app", 35)
diff(c, a, "(c) window closed again - (a) idle", 5)
diff(b, a, "(b) window open - (a) idle")
def launches(name):
    return " ".join(f"{float(l.split()[2]):.0f}" for l in open(f"{state}/launch-{name}") if l.startswith("launch "))
le, la = median("empty"), median("app")
print(f"\nlaunch to tray icon registered (median): tether-desktop {la:.0f} ms, empty tray app {le:.0f} ms: "
      f"{la / le:.2f}x (target <= 1.5x: {'ok' if la / le <= 1.5 else 'OVER'})")
print(f"  each launch (ms): tether-desktop {launches('app')}; empty tray app {launches('empty')}")
PY
