#!/usr/bin/env bash
# One H100 call: PyTorch SDPA peer sweep, then the ONNX Runtime WebGPU peer.
cd "$(dirname "$0")"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
date -u
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
python3 -c 'import torch, onnxruntime; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())' 2>&1
python3 bench/peers/sdpa.py --lengths 4096,8192,16384,32768,65536,131072 --non-causal-lengths 4096,16384,65536 \
  --budget-s 100 --out "$OUT/sdpa.json" 2>&1 | tee "$OUT/sdpa.log"
echo "sdpa done at $(date -u +%T)"
tar -C bench/peers/ort -xJf ort-modules.tar.xz
bash .gpu-kit/gpu.sh node bench/peers/ort/ort-attention.mjs --lengths 4096,8192,16384,32768,65536 \
  --non-causal-lengths 4096,16384 --dtype float16 --f32-if-no-f16 --time-unvalidated --budget-s 95 \
  --out "$OUT/ort.json" 2>&1 | grep -v 'artificially reduced' | tee "$OUT/ort.log"
echo "ort done at $(date -u +%T)"
