#!/usr/bin/env bash
# The demo: real PostgreSQL and Redis on loopback, tether-sim serving the demo platform in
# front of them, and the Tether desktop app pointed at it. Ctrl-C stops everything.
# The app's first start shows its welcome. Without an unlocked keyring (a plain
# dbus-run-session), the app says so before the sign-in and offers to keep it in a private file;
# the command line then finds it there too.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

state="$PWD/.tether-demo"
rm -rf "$state" && mkdir -p "$state"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; return 1; }

echo "==> building"
(cd ui && npm run --silent build)
cargo build --locked -p tether-sim -p tether-cli -p tether-desktop

echo "==> starting PostgreSQL and Redis on loopback"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$state"; fi
echo main > "$state/pgpass"
"${as_pg[@]}" "$pg_bin/initdb" -A scram-sha-256 -U main --pwfile "$state/pgpass" -D "$state/pg" >/dev/null
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/postgres" -D "$state/pg" -h 127.0.0.1 -p "$pg_port" -k "$state" >"$state/postgres.log" 2>&1 &
pids+=($!)
wait_port "$pg_port"
for _ in $(seq 1 100); do PGPASSWORD=main psql -h 127.0.0.1 -p "$pg_port" -U main -d postgres -qtAc 'create database main' 2>/dev/null && break; sleep 0.1; done
PGPASSWORD=main psql -h 127.0.0.1 -p "$pg_port" -U main -d main -qc \
  "create table if not exists orders(id serial primary key, item text); insert into orders(item) values ('tether demo order');" >/dev/null
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$state/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"
redis-cli -p "$redis_port" SET greeting "hello from the demo cache" >/dev/null

echo "==> starting tether-sim (the local platform)"
target/debug/tether-sim --demo \
  --backend "postgresql=127.0.0.1:$pg_port" --backend "redis=127.0.0.1:$redis_port" \
  --profile-out "$state/profile.toml" --scratch-dir "$state/apps" \
  >"$state/ready.json" 2>"$state/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$state/ready.json" ] && break; sleep 0.1; done
[ -s "$state/ready.json" ] || { cat "$state/sim.log" >&2; exit 1; }
export TETHER_PROFILE="$state/profile.toml"

python3 - "$state/ready.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["demo"]
print(f"""
The demo platform is up (tether-sim, a local development platform).
  API:            {r['api_url']}
  Sign-in:        {r['auth_url']}
  SSH gateway:    {r['ssh_host']}:{r['ssh_port']}
  Demo user:      {d['username']} / {d['password']}
  TOTP secret:    {d['totp_secret']}  (any authenticator app, or: oathtool --totp -b SECRET)
  API token:      {d['api_token']}
  Profile:        TETHER_PROFILE={sys.argv[1].rsplit('/',1)[0]}/profile.toml

Things to try in the Tether window (the sign-in page shows the demo's password and code):
  Sign in with MFA -> as {d['username']}, then the code -> Allow (on the first start, in the
    welcome, which then shows the lines it would add to ~/.ssh/config and asks)
  no unlocked keyring? the window offers to keep the sign-in in a private file
  type "storefront main" -> app -> Connection details (SSH user, database password)
  Open tunnels -> Tunnels: Copy address, then psql "postgresql://main:main@<address>/main"
  the tray icon's menu: your apps (Open terminal, Copy SSH command, Open tunnels), tunnels, Settings

Things to try in another terminal (the demo's profile is selected with TETHER_PROFILE):
  export TETHER_PROFILE={sys.argv[1].rsplit('/',1)[0]}/profile.toml
  target/debug/tether login                     # sign in in your browser (alice, then the TOTP code)
  echo {d['api_token']} | target/debug/tether auth:api-token-login   # or with the API token
  target/debug/tether projects
  target/debug/tether ssh -p jyu7waly36ncj -e main -A app -I 0     # a shell on the storefront
  target/debug/tether ssh -p rjify4yjcwxaa -e main -- 'echo "$PLATFORM_RELATIONSHIPS" | base64 -d'
  target/debug/tether config:ssh --write        # then plain ssh works: ssh $(target/debug/tether ssh -p rjify4yjcwxaa -e main --pipe)
  (tether finds the sign-in where the app keeps it: your keyring, or the private file if you
  chose it in the app; TETHER_TOKEN_STORE=file makes it use the file regardless.)
""")
PY

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "==> starting the Tether desktop app (it lives in the tray; Quit from its menu to stop the demo)"
  target/debug/tether-desktop
else
  echo "No display: the desktop app needs one. The platform keeps running; press Ctrl-C to stop."
  wait "${pids[-1]}"
fi
