#!/usr/bin/env bash
# The tunnel part of `make bench`, each figure against a baseline measured in the same run:
#   1. one way: 1 GiB through a Tether tunnel into a sink, against OpenSSH `ssh -N -L`
#      (chacha20-poly1305, its default, and aes128-gcm) and raw loopback;
#   2. both ways at once: 256 MiB each way through an echo service on one connection;
#   3. small request/response latency (p50, p99) through an echo service;
#   4. the client's CPU time per GiB carried one way: Tether's agent process against the
#      `ssh -L` process (from /proc/PID/stat, user + system);
#   all through tether-sim's gateway, and (as root, which can add the app's login) through
#   OpenSSH's own sshd trusting the simulator's CA, so that the client is measured and not
#   only the server;
#   5. time from `tunnel:open` to all five ports accepting, against five `ssh -f -N -L`
#      processes started one after another, the official client's way.
# Loopback only; everything stops by itself. Called by scripts/bench.sh after its build.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
bin="$repo/target/release"
size=$((1024 * 1024 * 1024))
duplex_size=$((256 * 1024 * 1024))
round_trips=2000
runs="${BENCH_TUNNEL_RUNS:-3}"

state=$(mktemp -d /tmp/tether-bench-tunnels.XXXXXX)
pids=()
made_user=""
# The ssh -L processes of this run carry this in their command line (SetEnv), so that they can
# be found and stopped without touching anyone else's ssh; stop-ssh.sh does it and waits until
# they are gone (their listening ports with them).
marker="tether-bench-ssh-${state##*.}"
cat >"$state/stop-ssh.sh" <<EOF
pkill -f 'TETHER_BENCH=$marker' || true
for _ in \$(seq 1 50); do pgrep -f 'TETHER_BENCH=$marker' >/dev/null || exit 0; sleep 0.1; done
echo "bench: this run's ssh -L processes still run after 5 s" >&2
exit 1
EOF
cleanup() {
  local status=$?
  bash "$state/stop-ssh.sh" 2>/dev/null || true
  [ -n "${HOME:-}" ] && "$bin/tether" agent:stop >/dev/null 2>&1 || true
  [ -n "${TETHER_PROFILE_SSHD:-}" ] && TETHER_PROFILE="$TETHER_PROFILE_SSHD" "$bin/tether" agent:stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$made_user" ]; then
    # sshd's session processes for the login end a moment after their clients: userdel refuses
    # a user that still runs something, and the login would stay behind.
    for _ in $(seq 1 50); do pgrep -u "$made_user" >/dev/null || break; sleep 0.1; done
    userdel "$made_user" 2>/dev/null || echo "bench: could not remove the login $made_user" >&2
  fi
  if [ "$status" = 0 ]; then rm -rf "$state"; else echo "bench: failed; its files are in $state" >&2; fi
}
trap cleanup EXIT INT TERM

export HOME="$state/home" XDG_RUNTIME_DIR="$state/run" TETHER_TOKEN_STORE=file
unset XDG_DATA_HOME TETHER_DATA_DIR TETHER_TOKEN PLATFORMSH_CLI_TOKEN UPSUN_CLI_TOKEN
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"

"$bin/tether-loadgen" serve "$state/ports" &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$state/ports" ] && break; sleep 0.1; done
read -r echo_port sink_port <"$state/ports"

# The platform: one app with five relationships (a sink, an echo server and three more echo
# services), and one whose relationships point at the sink and echo servers themselves, for
# sshd, which forwards to real addresses.
token="bench-api-token-0123456789abcdef"
direct=$(printf '{"sink":[{"scheme":"http","host":"127.0.0.1","port":%s,"rel":"sink","type":"network-storage:2.0"}],"echo":[{"scheme":"http","host":"127.0.0.1","port":%s,"rel":"echo","type":"network-storage:2.0"}]}' \
  "$sink_port" "$echo_port" | base64 -w0)
cat >"$state/fixture.toml" <<EOF
[backends]
sink = "127.0.0.1:$sink_port"
echo = "127.0.0.1:$echo_port"

[[organizations]]
id = "01HZX3BENCH000000000000000"
name = "bench"
label = "Bench"

[[users]]
id = "7a0e2f3a-4b5c-4d6e-8f70-8192a3b4c5d7"
username = "bench"
first_name = "Bench"
last_name = "Mark"
email = "bench@example.com"
password = "bench-password-1234"

[[api_tokens]]
user = "bench"
token = "$token"

[[projects]]
id = "benchproj"
title = "Bench"
region = "eu-3"
organization = "bench"
members = ["bench"]

  [[projects.services]]
  name = "sink"
  type = "redis:7.0"
  backend = "sink"
  [[projects.services]]
  name = "echo"
  type = "memcached:1.6"
  backend = "echo"
  [[projects.services]]
  name = "e3"
  type = "rabbitmq:3.12"
  backend = "echo"
  [[projects.services]]
  name = "e4"
  type = "elasticsearch:8.5"
  backend = "echo"
  [[projects.services]]
  name = "e5"
  type = "mongodb:6.0"
  backend = "echo"

  [[projects.apps]]
  name = "app"
  type = "php:8.3"
  relationships = { sink = "sink:redis", echo = "echo:memcached", e3 = "e3:rabbitmq", e4 = "e4:elasticsearch", e5 = "e5:mongodb" }

  [[projects.apps]]
  name = "direct"
  type = "php:8.3"
  relationships = { sink = "sink:redis" }
  relationships_variable = "$direct"

  [[projects.environments]]
  id = "main"
  machine_name = "main-bnch001"
  status = "active"
  type = "production"
EOF

"$bin/tether-sim" --fixture "$state/fixture.toml" --profile-out "$state/profile.toml" \
  --scratch-dir "$state/apps" >"$state/ready.json" 2>"$state/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$state/ready.json" ] && break; sleep 0.1; done
[ -s "$state/ready.json" ] || { cat "$state/sim.log" >&2; exit 1; }
export TETHER_PROFILE="$state/profile.toml"
tether="$bin/tether"
loadgen="$bin/tether-loadgen"
echo "$token" | "$tether" auth:api-token-login >/dev/null 2>&1
ssh_config=$(ls "$HOME"/.local/share/tether/ssh/*.config)
host=$("$tether" ssh -p benchproj -e main -A app --pipe)

results="$state/results"
: >"$results"
record() { echo "$*" >>"$results"; }

# Runs a command once to warm up (a connection's first transfer is slower, for every client:
# buffers grow, the allocator settles), then `runs` times, recording each line it prints
# ("seconds GB/s cpu-seconds" or "p50 p99") under a key; the summary takes the median of each
# field.
measure() { # gateway, kind, client, command...
  local key="$1 $2 $3" out; shift 3
  "$@" >/dev/null
  for _ in $(seq 1 "$runs"); do
    out=$("$@")
    record "$key $out"
  done
}

# A load generator's run, with where the machine's CPU went: prints what the command printed
# ("seconds GB/s client-cpu-seconds"), then the CPU seconds the whole machine was busy during the
# run (from /proc/stat: the gateway, the sink or echo service, the load generator and the client
# together) and the client's system (kernel) seconds. On this 2-core machine the runs are
# CPU-bound, so the rest of the machine's CPU per byte bounds what any client can reach.
with_shares() { # client pid, command...
  local pid=$1 before after sys_before sys_after out hz
  shift
  before=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
  sys_before=$(awk '{print $15}' "/proc/$pid/stat")
  out=$("$@")
  after=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
  sys_after=$(awk '{print $15}' "/proc/$pid/stat")
  hz=$(getconf CLK_TCK)
  echo "$out $(python3 -c "print(($after - $before) / $hz, ($sys_after - $sys_before) / $hz)")"
}

# The pid of a profile's agent: its lock file records it.
agent_pid() { # profile file
  local name
  name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$1" | head -n1)
  cat "$XDG_RUNTIME_DIR/tether/$name.pid"
}

# Free local ports for the ssh -L forwards: two for a gateway's sink and echo, five for the
# official client's way of opening an app's five relationships.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"

ssh_forward() { # cipher, config, destination, sink target, echo target: one ssh, both forwards
  ssh -F "$2" -o BatchMode=yes -o ExitOnForwardFailure=yes -o "SetEnv=TETHER_BENCH=$marker" \
    -c "$1" -f -N -L "127.0.0.1:${ports[0]}:$4" -L "127.0.0.1:${ports[1]}:$5" "$3"
}
stop_ssh() { bash "$state/stop-ssh.sh"; }

measure_gateway() { # gateway label, ssh config, ssh destination, app, sink target, echo target
  local gw=$1 config=$2 dest=$3 app=$4 sink_target=$5 echo_target=$6
  echo "==> $gw: tether tunnel"
  "$tether" tunnel:close --all -y >/dev/null 2>&1 || true
  "$tether" tunnel:open -p benchproj -e main -A "$app" -r sink -r echo >/dev/null
  local t_sink t_echo pid
  t_sink=$("$tether" tunnel:info -p benchproj -e main -A "$app" -P sink.0.port)
  t_echo=$("$tether" tunnel:info -p benchproj -e main -A "$app" -P echo.0.port)
  pid=$(agent_pid "$TETHER_PROFILE")
  measure "$gw" oneway tether with_shares "$pid" "$loadgen" send "$t_sink" "$size" "$pid"
  measure "$gw" duplex tether with_shares "$pid" "$loadgen" duplex "$t_echo" "$duplex_size" "$pid"
  measure "$gw" latency tether "$loadgen" latency "$t_echo" "$round_trips"
  "$tether" tunnel:close --all -y >/dev/null 2>&1
  for cipher in chacha20-poly1305@openssh.com aes128-gcm@openssh.com; do
    echo "==> $gw: ssh -L ($cipher)"
    stop_ssh
    ssh_forward "$cipher" "$config" "$dest" "$sink_target" "$echo_target"
    pid=$(pgrep -f "TETHER_BENCH=$marker")
    local name=${cipher%%-*}; name=${name%%@*}
    measure "$gw" oneway "ssh-$name" with_shares "$pid" "$loadgen" send "${ports[0]}" "$size" "$pid"
    measure "$gw" duplex "ssh-$name" with_shares "$pid" "$loadgen" duplex "${ports[1]}" "$duplex_size" "$pid"
    measure "$gw" latency "ssh-$name" "$loadgen" latency "${ports[1]}" "$round_trips"
    stop_ssh
  done
}

echo "==> raw loopback"
measure raw oneway direct "$loadgen" send "$sink_port" "$size"
measure raw duplex direct "$loadgen" duplex "$echo_port" "$duplex_size"
measure raw latency direct "$loadgen" latency "$echo_port" "$round_trips"

measure_gateway sim "$ssh_config" "$host" app sink.internal:6379 echo.internal:11211

echo "==> open all five: tether tunnel:open vs five ssh -f -N -L"
"$tether" tunnel:close --all -y >/dev/null 2>&1 || true
# The official client's way: one ssh process per relationship, started one after another.
{
  echo "exec 2>>'$state/five-ssh.err'"
  echo "ports=(${ports[*]:2:5})"
  echo 'i=0'
  echo 'for target in sink.internal:6379 echo.internal:11211 e3.internal:5672 e4.internal:9200 e5.internal:27017; do'
  echo "  ssh -F '$ssh_config' -o BatchMode=yes -o ExitOnForwardFailure=yes -o SetEnv=TETHER_BENCH=$marker -f -N -L \"127.0.0.1:\${ports[i]}:\$target\" '$host' || exit 1"
  echo '  i=$((i + 1))'
  echo 'done'
  echo "'$loadgen' accepting 10 ${ports[*]:2:5} >/dev/null"
} >"$state/five-ssh.sh"
hyperfine -N --warmup 1 --runs 10 --style basic --export-json "$state/open.json" \
  --prepare "$tether tunnel:close --all -y" \
  "$tether tunnel:open -p benchproj -e main -A app" >/dev/null
hyperfine -N --warmup 1 --runs 10 --style basic --export-json "$state/open-ssh.json" \
  --prepare "bash $state/stop-ssh.sh" \
  "bash $state/five-ssh.sh" >/dev/null || { cat "$state/five-ssh.err" >&2; exit 1; }
stop_ssh
"$tether" tunnel:close --all -y >/dev/null 2>&1 || true
record "open five tether $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$state/open.json")"
record "open five ssh $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$state/open-ssh.json")"

# OpenSSH's sshd as the gateway: it needs a login for the app's SSH user, which only root can
# add (and removes afterwards).
if [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ]; then
  direct_host=$("$tether" ssh -p benchproj -e main -A direct --pipe)
  direct_user=${direct_host%%@*}
  if ! id "$direct_user" >/dev/null 2>&1; then
    useradd -M -N -p '*' -d "$state" -s /bin/sh "$direct_user" && made_user=$direct_user
  fi
  mkdir -p /run/sshd "$state/sshd"
  ssh-keygen -q -t ed25519 -N "" -f "$state/sshd/host"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca_public_key"])' "$state/ready.json" >"$state/sshd/ca.pub"
  ssh-keygen -L -f "$HOME"/.local/share/tether/sessions/*/id_ed25519-cert.pub |
    awk '/Principals:/{p=1;next} /Critical Options:/{p=0} p{print $1}' >"$state/sshd/principals"
  # sshd reads the principals file as the login user.
  chmod o+x "$state"
  chmod 755 "$state/sshd"
  chmod 644 "$state/sshd/principals"
  sshd_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$state/sshd/config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $state/sshd/host
PidFile none
TrustedUserCAKeys $state/sshd/ca.pub
AuthorizedPrincipalsFile $state/sshd/principals
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AllowTcpForwarding yes
SetEnv PLATFORM_RELATIONSHIPS=$direct
EOF
  /usr/sbin/sshd -D -e -f "$state/sshd/config" 2>"$state/sshd/log" &
  pids+=($!)
  "$loadgen" accepting 10 "$sshd_port" >/dev/null
  # The same platform, with sshd as its SSH gateway: a profile of its own (and so a session
  # and an agent of its own).
  sshd_key=$(cut -d' ' -f1,2 "$state/sshd/host.pub")
  sed -e 's/^name = .*/name = "tether-bench-sshd"/' -e "s/^port = .*/port = $sshd_port/" \
    -e "s|^host_keys = .*|host_keys = [\"$sshd_key\"]|" "$state/profile.toml" >"$state/profile-sshd.toml"
  export TETHER_PROFILE_SSHD="$state/profile-sshd.toml"
  export TETHER_PROFILE="$TETHER_PROFILE_SSHD"
  echo "$token" | "$tether" auth:api-token-login >/dev/null 2>&1
  sshd_config_file="$HOME/.local/share/tether/ssh/tether-bench-sshd.config"
  measure_gateway sshd "$sshd_config_file" "$direct_host" direct "127.0.0.1:$sink_port" "127.0.0.1:$echo_port"
  "$tether" agent:stop >/dev/null 2>&1 || true
  export TETHER_PROFILE="$state/profile.toml"
else
  echo "==> sshd as the gateway: skipped (needs root to add the app's login, and /usr/sbin/sshd)"
fi

python3 - "$results" "$runs" <<'PY'
import os, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    runs.setdefault(tuple(parts[:3]), []).append([float(x) for x in parts[3:]])
def med(gw, kind, who, field):
    r = runs.get((gw, kind, who))
    return statistics.median(x[field] for x in r) if r else None
def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"
def num(x, fmt):
    return format(x, fmt) if x is not None else "-"
print(f"\nTunnels: one way = 1 GiB into a sink; both ways = 256 MiB each way at once through an echo, "
      f"one connection, GB/s each way;\nlatency = 64-byte round trips (2,000 a run); CPU = the client "
      f"process's user+system seconds per GiB one way (the agent; the ssh -L process). "
      f"Medians of {sys.argv[2]} runs.")
print(f"{'gateway':8} {'client':18} {'one way':>8} {'vs aes':>7} {'both ways':>9} {'vs best':>8} "
      f"{'p50 µs':>7} {'p99 µs':>7} {'vs best':>11} {'CPU s/GiB':>9} {'vs aes':>7}")
SSH = ("ssh-chacha20", "ssh-aes128")
def row(gw, who, label):
    one, two = med(gw, "oneway", who, 1), med(gw, "duplex", who, 1)
    p50, p99 = med(gw, "latency", who, 0), med(gw, "latency", who, 1)
    # send prints the client's CPU seconds for its 1 GiB as its third field.
    cpu = med(gw, "oneway", who, 2) if gw != "raw" else None
    vs = ["", "", "", ""]
    if gw != "raw":
        best_two = max(med(gw, "duplex", s, 1) or 0 for s in SSH)
        best_p50 = min(med(gw, "latency", s, 0) or float("inf") for s in SSH)
        best_p99 = min(med(gw, "latency", s, 1) or float("inf") for s in SSH)
        vs = [ratio(one, med(gw, "oneway", "ssh-aes128", 1)), ratio(two, best_two),
              f"{ratio(p50, best_p50)}/{ratio(p99, best_p99)}",
              ratio(cpu, med(gw, "oneway", "ssh-aes128", 2))]
    print(f"{gw:8} {label:18} {num(one, '8.2f')} {vs[0]:>7} {num(two, '9.2f')} {vs[1]:>8} "
          f"{num(p50, '7.1f')} {num(p99, '7.1f')} {vs[2]:>11} {num(cpu, '9.2f')} {vs[3]:>7}")
row("raw", "direct", "raw loopback")
for gw in ("sim", "sshd"):
    if (gw, "oneway", "tether") not in runs:
        continue
    for who, label in (("tether", "tether tunnel"), ("ssh-chacha20", "ssh -L chacha20"),
                       ("ssh-aes128", "ssh -L aes128-gcm")):
        row(gw, who, label)
print("vs aes: against ssh -L aes128-gcm through the same gateway; vs best: against the better "
      "of the two ssh -L ciphers there (faster, or lower latency; p50/p99)")
# Both runs are CPU-bound here: the machine's busy CPU per run is (nearly) all it has. What the
# rest of the machine (gateway, sink or echo, load generator, the kernel's loopback work they
# cause) spends per run does not depend on the client, so it bounds any client's figure.
print("\nwhere the CPU went (seconds per run, medians): machine busy = everything on the machine "
      "during the run;\nclient = the client process (of which kernel); ceiling = the baseline's "
      "machine busy / the rest with Tether, what a client using no CPU at all could reach")
for kind, label, baseline in (("oneway", "one way", lambda gw: "ssh-aes128"),
                              ("duplex", "both ways",
                               lambda gw: max(SSH, key=lambda s: med(gw, "duplex", s, 1) or 0))):
    for gw in ("sim", "sshd"):
        if (gw, kind, "tether") not in runs:
            continue
        best = baseline(gw)
        for who in ("tether",) + SSH:
            if len(runs[(gw, kind, who)][0]) < 5:
                continue
            seconds, busy, client, sys_ = (med(gw, kind, who, f) for f in (0, 3, 2, 4))
            # How much of the cores' time the run used: near 100% is CPU-bound.
            used = busy / (seconds * os.cpu_count())
            print(f"  {label:9} {gw:5} {who:13} machine busy {busy:5.2f} ({used:4.0%} of the "
                  f"cores)  client {client:5.2f} (kernel {sys_:4.2f})  rest {busy - client:5.2f}")
        t_busy, t_client = med(gw, kind, "tether", 3), med(gw, kind, "tether", 2)
        s_busy = med(gw, kind, best, 3)
        if t_busy and s_busy and t_busy > t_client:
            t_sys = med(gw, kind, "tether", 4)
            print(f"  {label:9} {gw:5} ceiling against {best}: {s_busy / (t_busy - t_client):.2f}x "
                  f"with a client using no CPU; {s_busy / (t_busy - t_client + t_sys):.2f}x with "
                  f"Tether's kernel time and no user time")
t = runs[("open", "five", "tether")][0][0]; s = runs[("open", "five", "ssh")][0][0]
print(f"\nopen five relationships until all accept: tether tunnel:open {t*1000:.0f} ms, "
      f"five ssh -f -N -L {s*1000:.0f} ms: {t/s:.2f}x (target <= 0.3x)")
print("targets, through each gateway: one way >= 1.2x ssh -L aes128-gcm; both ways >= 1.2x the "
      "best ssh -L; latency p50 and p99 <= 1.0x the best ssh -L; client CPU per GiB <= 0.7x "
      "ssh -L aes128-gcm")
print("time from a silent network's return to byte-exact echoes through every tunnel: measured by "
      "tests/tests/network_faults.rs (its 'measured:' lines), not here")
PY
