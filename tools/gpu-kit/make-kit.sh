#!/usr/bin/env bash
# Builds .gpu-kit/ in the project root: what a GPU machine (which has no Node.js and
# no package registry) needs to run this project's code there.
#   node.xz        this machine's node binary, compressed
#   debs/          the Vulkan loader and GL dispatch libraries that the NVIDIA ICD there needs
#   modules.tar.xz production node_modules (only the linux-x64 Dawn binary kept)
#   gpu.sh         the entry point to run on the GPU machine (copied from here)
# Usage, from the project root, after `npm ci` and your build:
#   tools/gpu-kit/make-kit.sh            # then carry .gpu-kit (and dist/ or other build output)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
kit=.gpu-kit
# .gitignore lists .gpu-kit/, so the kit is never committed (and .git may be a file in a worktree).
mkdir -p "$kit/debs"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cp "$here/gpu.sh" "$kit/gpu.sh"; chmod +x "$kit/gpu.sh"

node_bin=$(readlink -f "$(command -v node)")
if [ ! -s "$kit/node.xz" ] || [ "$node_bin" -nt "$kit/node.xz" ]; then
  echo "compressing $(node --version) ..." >&2
  xz -T2 -6 -c "$node_bin" > "$kit/node.xz"
fi

if ! ls "$kit"/debs/libglvnd0_*.deb >/dev/null 2>&1; then
  lists=/tmp/gpu-kit-apt-lists; mkdir -p "$lists/partial"
  o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  apt-get $o update >/dev/null
  (cd "$kit/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
fi

# Production dependencies only, installed afresh from the lockfile into a scratch dir.
tmp=$(mktemp -d)
cp package.json "$tmp/"; [ -f package-lock.json ] && cp package-lock.json "$tmp/"
(cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null 2>&1 || npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
if [ -d "$tmp/node_modules/webgpu/dist" ]; then
  find "$tmp/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
fi
tar -C "$tmp" -cJf "$kit/modules.tar.xz" node_modules 2>/dev/null || tar -C "$tmp" -cJf "$kit/modules.tar.xz" --files-from /dev/null
rm -rf "$tmp"
du -sh "$kit" >&2
echo "kit ready: carry [\"$kit\", <your build output>] and run: bash $kit/gpu.sh <command>" >&2
