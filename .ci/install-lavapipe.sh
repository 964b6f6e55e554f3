#!/usr/bin/env bash
# Mesa's lavapipe (software Vulkan) from Debian bookworm-backports, so Dawn (npm `webgpu`) finds an
# adapter on a machine without a GPU. Bookworm's own Mesa 22 is too old for Dawn. Idempotent; needs
# root (or sudo) the first time.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q libvulkan_lvp.so && dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q bpo; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
src=/etc/apt/sources.list.d/debian.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null; then
  uris=$(awk '/^URIs:/{print; exit}' "$src")
  keyring=$(awk '/^Signed-By:/{print; exit}' "$src")
  printf 'Types: deb\n%s\nSuites: bookworm-backports\nComponents: main\n%s\n' "$uris" "$keyring" | $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers >/dev/null
echo "lavapipe: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)" >&2
