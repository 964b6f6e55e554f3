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
# ORT_LLAMA_ARGS runs the whole-model ORT peer last (time to first token of a random-weight
# llama-1b, made in ORT_LLAMA_MODEL when missing), after a --check on a 2-layer model of the same
# layer shapes, e.g. ORT_LLAMA_ARGS="--lengths 4096,32768 --reps 3 --budget-s 200".
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
if [ -n "${ORT_LLAMA_ARGS:-}" ]; then
  model=${ORT_LLAMA_MODEL:-/tmp/llama-1b-random}
  check=/tmp/llama-1b-2layers-check
  [ -f "$model/config.json" ] || bash .gpu-kit/gpu.sh node dist/bench/make-random-llama.js --shape llama-1b --out "$model"
  [ -f "$check/config.json" ] || bash .gpu-kit/gpu.sh node dist/bench/make-random-llama.js --shape llama-1b --layers 2 --vocab 4096 --out "$check"
  echo "models ready at $(date -u +%T)"
  # 40 tokens: more than one attention tile; the CPU reference of 2 layers takes seconds.
  bash .gpu-kit/gpu.sh node bench/peers/ort/ort-llama.mjs --model "$check" --check --check-length 40 --lengths '' --ep webgpu --f32-if-no-f16 \
    --out "$out/ort-llama-check.json" 2>&1 | grep --line-buffered -v 'artificially reduced' | tee "$out/ort-llama-check.log"
  bash .gpu-kit/gpu.sh node bench/peers/ort/ort-llama.mjs --model "$model" $ORT_LLAMA_ARGS --ep webgpu --f32-if-no-f16 \
    --out "$out/ort-llama.json" 2>&1 | grep --line-buffered -v 'artificially reduced' | tee "$out/ort-llama.log"
  echo "ort-llama done at $(date -u +%T)"
fi
