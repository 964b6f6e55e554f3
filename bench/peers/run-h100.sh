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
# SDPA_ARGS="" skips SDPA; ORT_ARGS="" skips ORT; ORT_ARGS2 is an optional second ORT sweep;
# OURS_ARGS runs our harness first (node dist/bench/attention.js $OURS_ARGS).
sdpa_args=${SDPA_ARGS-"--lengths 4096,8192,16384,32768,65536,131072 --non-causal-lengths 4096,16384,65536 --budget-s 100"}
ort_args=${ORT_ARGS-"--lengths 4096,8192,16384,32768,65536 --non-causal-lengths 4096,16384 --budget-s 95"}
if [ -n "${OURS_ARGS:-}" ]; then
  bash .gpu-kit/gpu.sh node dist/bench/attention.js $OURS_ARGS --out "$out/attention.json" 2>&1 \
    | grep -v 'artificially reduced' | tee "$out/attention.log"
  echo "ours done at $(date -u +%T)"
fi
if [ -n "$sdpa_args" ]; then
  python3 bench/peers/sdpa.py $sdpa_args --out "$out/sdpa.json" 2>&1 | tee "$out/sdpa.log"
  echo "sdpa done at $(date -u +%T)"
fi
[ -d bench/peers/ort/node_modules ] || tar -C bench/peers/ort -xJf ort-modules.tar.xz
n=0
for args in "$ort_args" "${ORT_ARGS2:-}"; do
  [ -n "$args" ] || continue; n=$((n + 1))
  bash .gpu-kit/gpu.sh node bench/peers/ort/ort-attention.mjs $args --dtype float16 --f32-if-no-f16 --time-unvalidated \
    --out "$out/ort$n.json" 2>&1 | grep -v 'artificially reduced' | tee "$out/ort$n.log"
done
echo "ort done at $(date -u +%T)"
