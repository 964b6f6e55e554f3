#!/usr/bin/env bash
# Stages what the GPU machine needs for bench/peers/run-h100.sh into DEST (a git-ignored folder of
# the checkout the device tool sends, e.g. /work/main/.devrun/peers): the GPU kit (.gpu-kit, made by
# ../shared/gpu/make-kit.sh), dist/src and dist/bench, the peer scripts, and onnxruntime-node for linux-x64 only
# (xz: the full package is 290 MB, the linux-x64 library 45 MB, compressed about 13 MB).
# Usage, from the project root after `npm ci`, `(cd bench/peers/ort && npm ci --onnxruntime-node-install=skip)`:
#   bash bench/peers/stage-h100.sh /work/main/.devrun/peers
set -euo pipefail
dest=${1:?usage: stage-h100.sh DEST}
[ -d .gpu-kit ] || { echo "no .gpu-kit here: run ../shared/gpu/make-kit.sh first" >&2; exit 2; }
[ -d bench/peers/ort/node_modules/onnxruntime-node ] || { echo "run npm ci --onnxruntime-node-install=skip in bench/peers/ort first" >&2; exit 2; }
rm -rf "$dest"; mkdir -p "$dest/dist" "$dest/bench/peers/ort"
cp -r .gpu-kit "$dest/"
cp -r dist/src dist/bench "$dest/dist/"
cp package.json "$dest/"
cp bench/peers/sdpa.py bench/peers/run-h100.sh "$dest/bench/peers/"
cp bench/peers/ort/*.mjs bench/peers/ort/package.json "$dest/bench/peers/ort/"
# Earlier peer results (bench/results/<date>-<machine>/peers*.json), for --peers on the device.
(shopt -s nullglob; for f in bench/results/*/peers*.json; do mkdir -p "$dest/$(dirname "$f")"; cp "$f" "$dest/$f"; done)
nm=bench/peers/ort/node_modules/onnxruntime-node/bin/napi-v6
tar -C bench/peers/ort -cf - --exclude="${nm#bench/peers/ort/}/darwin" --exclude="${nm#bench/peers/ort/}/win32" \
  --exclude="${nm#bench/peers/ort/}/linux/arm64" node_modules | xz -T2 -6 > "$dest/ort-modules.tar.xz"
du -sh "$dest"
