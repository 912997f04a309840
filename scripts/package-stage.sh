#!/usr/bin/env bash
# Run by scripts/package.sh after the dist build, before the bundles: puts what
# tauri.conf.json's "files" name into target/package/. The manual page and the completions
# come from the built `tether` itself (`tether man`, `tether completion`), so they always match
# the binary they ship with.
set -euo pipefail
cd "$(dirname "$0")/.."

dist=${TETHER_DIST_DIR:?the dist build directory, set by scripts/package.sh}
stage=target/package
tether="$dist/tether"
version=$(python3 -c 'import json; print(json.load(open("tauri.conf.json"))["version"])')

mkdir -p "$stage/completions"
install -m 0755 "$tether" "$stage/tether"
"$tether" man | gzip -9n >"$stage/tether.1.gz"
gzip -9n <packaging/tether-desktop.1 >"$stage/tether-desktop.1.gz"
"$tether" completion bash >"$stage/completions/tether.bash"
"$tether" completion zsh >"$stage/completions/_tether"
"$tether" completion fish >"$stage/completions/tether.fish"

# Debian's changelog of a package built outside Debian: this version, from this commit.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
cat <<CHANGELOG | gzip -9n >"$stage/changelog.gz"
tether ($version) unstable; urgency=medium

  * Built from commit $commit. What changed: the project's history.

 -- Tether developers <packages@tether.sh>  $date
CHANGELOG
echo "package-stage: $(ls "$stage" | tr '\n' ' ')"
