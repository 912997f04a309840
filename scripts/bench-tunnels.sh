#!/usr/bin/env bash
# The tunnel part of `make bench`, each figure against a baseline measured in the same run:
#   1. throughput of 1 GiB through a Tether tunnel, OpenSSH `ssh -N -L` (chacha20-poly1305 and
#      aes128-gcm) and raw loopback; through tether-sim's gateway, and (as root, which can add
#      the app's login) through OpenSSH's own sshd trusting the simulator's CA, so that the
#      client is measured and not only the server;
#   2. small request/response latency (p50, p99) through the same;
#   3. time from `tunnel:open` to all five ports accepting, against five `ssh -f -N -L`
#      processes started one after another, the official client's way.
# Loopback only; everything stops by itself. Called by scripts/bench.sh after its build.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
bin="$repo/target/release"
size=$((1024 * 1024 * 1024))
runs="${BENCH_TUNNEL_RUNS:-3}"

state=$(mktemp -d /tmp/tether-bench-tunnels.XXXXXX)
pids=()
made_user=""
cleanup() {
  local status=$?
  pkill -f "TETHER_BENCH=tether-bench-[s]sh" 2>/dev/null || true
  [ -n "${HOME:-}" ] && "$bin/tether" agent:stop >/dev/null 2>&1 || true
  [ -n "${TETHER_PROFILE_SSHD:-}" ] && TETHER_PROFILE="$TETHER_PROFILE_SSHD" "$bin/tether" agent:stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$made_user" ] && userdel "$made_user" 2>/dev/null || true
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

# The median of `runs` runs of a command printing "seconds GB/s" (throughput) or "p50 p99".
median_of() { # field, command...
  local field=$1; shift
  for _ in $(seq 1 "$runs"); do "$@"; done | awk -v f="$field" '{print $f}' | sort -g |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

ssh_forward() { # label, cipher, config, port, destination, target
  local cipher=$2 config=$3 port=$4 dest=$5 target=$6
  ssh -F "$config" -o BatchMode=yes -o ExitOnForwardFailure=yes -o "SetEnv=TETHER_BENCH=tether-bench-ssh" \
    -c "$cipher" -f -N -L "127.0.0.1:$port:$target" "$dest"
}
stop_ssh() { pkill -f "TETHER_BENCH=tether-bench-[s]sh" 2>/dev/null || true; sleep 0.2; }

measure_gateway() { # gateway label, ssh config, ssh destination, app, sink target, echo target
  local gw=$1 config=$2 dest=$3 app=$4 sink_target=$5 echo_target=$6
  echo "==> $gw: tether tunnel"
  "$tether" tunnel:close --all -y >/dev/null 2>&1 || true
  "$tether" tunnel:open -p benchproj -e main -A "$app" -r sink -r echo >/dev/null
  local t_sink t_echo
  t_sink=$("$tether" tunnel:info -p benchproj -e main -A "$app" -P sink.0.port)
  t_echo=$("$tether" tunnel:info -p benchproj -e main -A "$app" -P echo.0.port)
  record "$gw throughput tether $(median_of 2 "$loadgen" send "$t_sink" "$size")"
  record "$gw latency tether $(for _ in 1; do "$loadgen" latency "$t_echo" 2000; done)"
  "$tether" tunnel:close --all -y >/dev/null 2>&1
  for cipher in chacha20-poly1305@openssh.com aes128-gcm@openssh.com; do
    echo "==> $gw: ssh -L ($cipher)"
    stop_ssh
    ssh_forward x "$cipher" "$config" 41001 "$dest" "$sink_target"
    ssh_forward x "$cipher" "$config" 41002 "$dest" "$echo_target"
    local name=${cipher%%-*}; name=${name%%@*}
    record "$gw throughput ssh-$name $(median_of 2 "$loadgen" send 41001 "$size")"
    record "$gw latency ssh-$name $("$loadgen" latency 41002 2000)"
    stop_ssh
  done
}

echo "==> raw loopback"
record "raw throughput direct $(median_of 2 "$loadgen" send "$sink_port" "$size")"
record "raw latency direct $("$loadgen" latency "$echo_port" 2000)"

measure_gateway sim "$ssh_config" "$host" app sink.internal:6379 echo.internal:11211

echo "==> open all five: tether tunnel:open vs five ssh -f -N -L"
"$tether" tunnel:close --all -y >/dev/null 2>&1 || true
# The official client's way: one ssh process per relationship, started one after another.
{
  echo "exec 2>>'$state/five-ssh.err'"
  echo 'port=41011'
  echo 'for target in sink.internal:6379 echo.internal:11211 e3.internal:5672 e4.internal:9200 e5.internal:27017; do'
  echo "  ssh -F '$ssh_config' -o BatchMode=yes -o ExitOnForwardFailure=yes -o SetEnv=TETHER_BENCH=tether-bench-ssh -f -N -L \"127.0.0.1:\$port:\$target\" '$host' || exit 1"
  echo '  port=$((port + 1))'
  echo 'done'
  echo "'$loadgen' accepting 10 41011 41012 41013 41014 41015 >/dev/null"
} >"$state/five-ssh.sh"
hyperfine -N --warmup 1 --runs 10 --style basic --export-json "$state/open.json" \
  --prepare "$tether tunnel:close --all -y" \
  "$tether tunnel:open -p benchproj -e main -A app" >/dev/null
hyperfine -N --warmup 1 --runs 10 --style basic --export-json "$state/open-ssh.json" \
  --prepare "bash -c 'pkill -f TETHER_BENCH=tether-bench-[s]sh; sleep 0.2; true'" \
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

python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    rows[tuple(parts[:3])] = [float(x) for x in parts[3:]]
def gbps(gw, who):
    r = rows.get((gw, "throughput", who)); return r[0] if r else None
print("\nTunnels (1 GiB through each; latency: 64-byte request/response, 2,000 round trips)")
print(f"{'gateway':8} {'client':18} {'GB/s':>7} {'vs ssh -L aes128-gcm':>22} {'p50 µs':>8} {'p99 µs':>8}")
raw = gbps("raw", "direct")
lat = rows.get(("raw", "latency", "direct"))
print(f"{'-':8} {'raw loopback':18} {raw:7.2f} {'':>22} {lat[0]:8.1f} {lat[1]:8.1f}")
for gw in ("sim", "sshd"):
    base = gbps(gw, "ssh-aes128")
    for who, label in (("tether", "tether tunnel"), ("ssh-chacha20", "ssh -L chacha20"), ("ssh-aes128", "ssh -L aes128-gcm")):
        g = gbps(gw, who)
        if g is None:
            continue
        l = rows.get((gw, "latency", who), [0, 0])
        ratio = f"{g / base:5.2f}x" if base else "-"
        print(f"{gw:8} {label:18} {g:7.2f} {ratio:>22} {l[0]:8.1f} {l[1]:8.1f}")
t = rows[("open", "five", "tether")][0]; s = rows[("open", "five", "ssh")][0]
print(f"\nopen five relationships until all accept: tether tunnel:open {t*1000:.0f} ms, "
      f"five ssh -f -N -L {s*1000:.0f} ms: {t/s:.2f}x (target <= 0.3x)")
print("targets: tether >= 1.5x ssh -L through the same real sshd; latency p50/p99 no worse")
PY
