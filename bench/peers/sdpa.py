#!/usr/bin/env python3
"""PyTorch SDPA as a benchmark peer: the FlashAttention-2 and cuDNN backends of
torch.nn.functional.scaled_dot_product_attention, timed with CUDA events.

    python3 bench/peers/sdpa.py --lengths 4096,8192 --out sdpa.json

Each (backend, dtype, heads/kv-heads, causal) case is first validated on a small shape with
awkward sizes against the MATH backend in float32 (validate before timing), then timed over the
length sweep: warm-up runs, then at least --min-iters timed runs (more while under --target-ms),
each bracketed by CUDA events; the median is reported. FLOPs are 4*B*H*Lq*Lk*D, halved when
causal (the rule bench/attention.ts uses), so TFLOP/s compare across tools.

GQA (H query heads sharing Hkv key/value heads) uses enable_gqa=True where the backend accepts
it; where it does not, K/V are expanded with repeat_interleave outside the timed region and the
record says gqa="repeat" (the kernel then reads H/Hkv times more K/V bytes than a GQA kernel).
"""
import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}
TOL = {"f16": 2e-2, "bf16": 4e-2}  # max abs error vs f32 math on unit-normal inputs


def attention_flops(b, h, lq, lk, d, causal):
    full = 4 * b * h * lq * lk * d
    return full / 2 if causal else full


def run_sdpa(backend, q, k, v, causal, gqa):
    """One SDPA call on the named backend; gqa is 'native' (enable_gqa) or 'repeat'/'none'."""
    with sdpa_kernel([BACKENDS[backend]]):
        if gqa == "native":
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def expand_kv(k, v, heads):
    rep = heads // k.shape[1]
    return k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)


def pick_gqa_mode(backend, q, k, v, causal):
    """'none' for MHA; 'native' if the backend takes enable_gqa, else 'repeat'."""
    if k.shape[1] == q.shape[1]:
        return "none", None
    try:
        run_sdpa(backend, q, k, v, causal, "native")
        torch.cuda.synchronize()
        return "native", None
    except RuntimeError as e:  # the backend refuses GQA: fall back, and say why
        return "repeat", str(e).splitlines()[0][:200]


def validate(backend, dtype, heads, kv_heads, d, causal):
    """Small awkward shape (length not a multiple of any tile) vs MATH in float32."""
    g = torch.Generator(device="cuda").manual_seed(1)
    length = 197
    shape_q = (2, heads, length, d)
    shape_kv = (2, kv_heads, length, d)
    q32 = torch.randn(shape_q, device="cuda", generator=g)
    k32 = torch.randn(shape_kv, device="cuda", generator=g)
    v32 = torch.randn(shape_kv, device="cuda", generator=g)
    q, k, v = (t.to(DTYPES[dtype]) for t in (q32, k32, v32))
    gqa, why = pick_gqa_mode(backend, q, k, v, causal)
    if gqa == "repeat":
        k, v = expand_kv(k, v, heads)
    out = run_sdpa(backend, q, k, v, causal, gqa).float()
    kr, vr = expand_kv(k32, v32, heads) if kv_heads != heads else (k32, v32)
    # Reference on the same rounded inputs the kernel saw.
    qr = q.float()
    kr, vr = kr.to(DTYPES[dtype]).float(), vr.to(DTYPES[dtype]).float()
    with sdpa_kernel([SDPBackend.MATH]):
        ref = F.scaled_dot_product_attention(qr, kr, vr, is_causal=causal)
    err = (out - ref).abs().max().item()
    return {"shape": {"batch": 2, "heads": heads, "kvHeads": kv_heads, "length": length, "headDim": d},
            "maxAbsError": err, "tolerance": TOL[dtype], "passed": err <= TOL[dtype]}, gqa, why


def time_case(backend, dtype, heads, kv_heads, d, length, causal, gqa, args):
    torch.manual_seed(0)
    dt = DTYPES[dtype]
    q = torch.randn(1, heads, length, d, device="cuda", dtype=dt)
    k = torch.randn(1, kv_heads, length, d, device="cuda", dtype=dt)
    v = torch.randn(1, kv_heads, length, d, device="cuda", dtype=dt)
    if gqa == "repeat":
        k, v = expand_kv(k, v, heads)
    for _ in range(args.warmup):
        run_sdpa(backend, q, k, v, causal, gqa)
    torch.cuda.synchronize()
    times = []
    t0 = time.perf_counter()
    while len(times) < args.min_iters or (len(times) < args.max_iters and (time.perf_counter() - t0) * 1e3 < args.target_ms):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run_sdpa(backend, q, k, v, causal, gqa)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    flops = attention_flops(1, heads, length, length, d, causal)
    del q, k, v
    torch.cuda.empty_cache()
    return {"length": length, "ms": ms, "minMs": min(times), "iters": len(times),
            "tflops": flops / (ms * 1e9), "flops": flops}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="4096,8192", help="causal sweep, comma-separated")
    p.add_argument("--non-causal-lengths", default="4096", help="non-causal sweep (the SLA comparison)")
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", default="32,8", help="comma-separated; 8 with heads 32 is GQA 4:1")
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--dtypes", default="bf16,f16")
    p.add_argument("--backends", default="flash,cudnn")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--max-iters", type=int, default=20)
    p.add_argument("--target-ms", type=float, default=300.0, help="keep timing while under this wall time")
    p.add_argument("--budget-s", type=float, default=150.0, help="skip remaining shapes past this")
    p.add_argument("--out")
    args = p.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]
    started = time.perf_counter()

    cases = []
    for backend in args.backends.split(","):
        for dtype in args.dtypes.split(","):
            for kv in ints(args.kv_heads):
                cases.append((backend, dtype, kv, True, ints(args.lengths)))
            if args.non_causal_lengths:
                cases.append((backend, dtype, args.heads, False, ints(args.non_causal_lengths)))

    results = []
    for backend, dtype, kv, causal, lengths in cases:
        entry = {"backend": backend, "dtype": dtype, "heads": args.heads, "kvHeads": kv, "headDim": args.head_dim,
                 "causal": causal, "shapes": [], "skipped": []}
        results.append(entry)
        try:
            entry["validation"], gqa, why = validate(backend, dtype, args.heads, kv, args.head_dim, causal)
        except RuntimeError as e:
            entry["validation"] = {"passed": False, "error": str(e).splitlines()[0][:300]}
            print(f"{backend} {dtype} H={args.heads}/{kv} causal={causal}: not run: {entry['validation']['error']}", file=sys.stderr)
            continue
        entry["gqa"] = gqa
        if why:
            entry["gqaNote"] = f"enable_gqa refused ({why}); K/V expanded with repeat_interleave"
        print(f"{backend} {dtype} H={args.heads}/{kv} causal={causal} gqa={gqa}: validation {entry['validation']}", file=sys.stderr)
        if not entry["validation"]["passed"]:
            continue
        for length in lengths:
            if time.perf_counter() - started > args.budget_s:
                entry["skipped"].append({"length": length, "reason": "time budget"})
                continue
            try:
                r = time_case(backend, dtype, args.heads, kv, args.head_dim, length, causal, gqa, args)
            except RuntimeError as e:  # out of memory or a backend limit at this length
                entry["skipped"].append({"length": length, "reason": str(e).splitlines()[0][:300]})
                torch.cuda.empty_cache()
                continue
            entry["shapes"].append(r)
            print(f"  L={length}: {r['ms']:.3f} ms  {r['tflops']:.1f} TFLOP/s", file=sys.stderr)

    props = torch.cuda.get_device_properties(0)
    report = {
        "peer": "pytorch-sdpa",
        "device": torch.cuda.get_device_name(0),
        "multiprocessors": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "date": datetime.now(timezone.utc).isoformat(),
        "flopRule": "4·B·H·Lq·Lk·D, halved when causal",
        "timing": f"CUDA events per call, median; {args.warmup} warm-up calls",
        "results": results,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
