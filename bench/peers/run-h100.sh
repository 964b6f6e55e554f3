#!/usr/bin/env bash
# One GPU-machine call for the peers: PyTorch SDPA sweep, then the ONNX Runtime WebGPU peer.
# Runs from a folder staged by bench/peers/stage-h100.sh (it has the kit, dist/src and the peers).
#   device run:  bash .devrun/peers/bench/peers/run-h100.sh      (carry [".devrun/peers"])
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
out=${OUT:-/tmp/peers-out}; mkdir -p "$out"
date -u
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())' 2>&1
python3 bench/peers/sdpa.py --lengths 4096,8192,16384,32768,65536,131072 --non-causal-lengths 4096,16384,65536 \
  --budget-s 100 --out "$out/sdpa.json" 2>&1 | tee "$out/sdpa.log"
echo "sdpa done at $(date -u +%T)"
[ -d bench/peers/ort/node_modules ] || tar -C bench/peers/ort -xJf ort-modules.tar.xz
bash .gpu-kit/gpu.sh node bench/peers/ort/ort-attention.mjs --lengths 4096,8192,16384,32768,65536 \
  --non-causal-lengths 4096,16384 --dtype float16 --f32-if-no-f16 --time-unvalidated --budget-s 95 \
  --out "$out/ort.json" 2>&1 | grep -v 'artificially reduced' | tee "$out/ort.log"
echo "ort done at $(date -u +%T)"
