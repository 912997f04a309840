#!/usr/bin/env bash
# Installs every system package Tether needs to build, run the demo and run its tests on a
# fresh Debian/Ubuntu machine. Idempotent: packages already present are skipped quickly.
set -euo pipefail

packages=(
  # build
  build-essential pkg-config curl file ca-certificates git
  libssl-dev libdbus-1-dev
  # Tauri v2 on Linux (WebKitGTK 4.1, tray, icons)
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  # the desktop under test: a virtual display, a session bus, the Secret Service, WebDriver
  xvfb xauth dbus dbus-x11 gnome-keyring libsecret-tools webkit2gtk-driver
  # the app under Wayland: weston's headless backend and its screenshooter
  weston
  # the real peers the tests and the demo use
  openssh-client openssh-server openssh-sftp-server rsync
  postgresql postgresql-client redis-server redis-tools
  # MySQL/MariaDB for db:sql, db:dump and the SQL shell (tests/src/mariadb.rs runs its own)
  mariadb-server mariadb-client
  # a browser engine for the login page tests, a terminal, screenshots
  chromium chromium-driver xterm xfonts-base tmux imagemagick xdotool xclip
  # scripts and the desktop tests (close-window.py, the demo's ports)
  python3
  # the namespace tests (unshare, mount, ip): the gateway at its real name on port 22
  util-linux mount iproute2
  # the network fault tests: silence, loss and resets on the path to the gateway
  nftables
  # benchmarks (make bench)
  hyperfine
  # the packages' tests (make package): checkers of the .deb, the .rpm, the desktop entry, the
  # AppStream metainfo and the manual page
  lintian rpm appstream desktop-file-utils man-db
  # node (with npm) for the UI
  nodejs
)

# Debian's own nodejs has no npm; NodeSource's nodejs brings it.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql, redis and mariadb packages try to start system services; we run our own
# instances on loopback, so keep the package scripts from starting anything.
if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
