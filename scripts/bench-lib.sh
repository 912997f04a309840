# Shared by the benchmarks (sourced, not run).

# keep_toolchain: cargo and rustup go on finding the toolchain once HOME is a throwaway directory
# (rustup looks under $HOME/.rustup unless RUSTUP_HOME says where): the real ones are pinned
# before anything changes HOME, and cargo's bin directory is put on the PATH.
keep_toolchain() {
  if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$HOME/.rustup" ]; then export RUSTUP_HOME="$HOME/.rustup"; fi
  if [ -z "${CARGO_HOME:-}" ] && [ -d "$HOME/.cargo" ]; then export CARGO_HOME="$HOME/.cargo"; fi
  if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  fi
}

# start_demo_sim SIM TETHER: serves the demo platform with files in $state (appending its pid to
# the caller's `pids`), selects its profile (TETHER_PROFILE) and signs in with its API token.
start_demo_sim() {
  local sim=$1 tether=$2 token
  "$sim" --demo --profile-out "$state/profile.toml" \
    --scratch-dir "$state/apps" >"$state/ready.json" 2>"$state/sim.log" &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$state/ready.json" ] && break; sleep 0.1; done
  [ -s "$state/ready.json" ] || { cat "$state/sim.log" >&2; exit 1; }
  export TETHER_PROFILE="$state/profile.toml"
  token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["demo"]["api_token"])' "$state/ready.json")
  echo "$token" | "$tether" auth:api-token-login >/dev/null 2>&1
}
