#!/usr/bin/env python3
"""PyTorch as an end-to-end peer of `sparse-attn ttft`: the same Hugging Face Llama checkpoint
(random weights from bench/make-random-llama.ts, or the fixture) run by a plain PyTorch forward
pass with scaled_dot_product_attention (cuDNN or FlashAttention-2 backend), f16 on the GPU.

    python3 bench/peers/llama_ttft.py --model /tmp/l1b --lengths 4096,32768 --out ttft-torch.json
    python3 bench/peers/llama_ttft.py --model test/fixtures/bytes-llama-dev --check bench/peers/fixture-logits.json

Time to first token = prefill of a prompt of L random ids (in chunks of --chunk tokens, each
chunk attending to the cache so far, as our runner does) + the last position's logits + argmax,
timed with CUDA events around the whole thing after a warm-up prefill; the median of --reps.
No transformers dependency: the model is written out here (RMSNorm, HF rotate_half RoPE, GQA
attention through SDPA's enable_gqa, SwiGLU MLP), so --check compares its logits with logits
our own runner computed for the fixture (a JSON of prompt and last-position logits).
"""
import argparse
import json
import math
import os
import statistics
import struct
from datetime import datetime, timezone

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}
DT = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}


def read_safetensors(path, device, dtype):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DT[info["dtype"]]).reshape(info["shape"])
        out[name] = t.to(device=device, dtype=dtype)
    return out


def load_checkpoint(folder, device, dtype):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(folder, f), device, dtype))
    return cfg, w


class Llama:
    def __init__(self, cfg, w, device):
        self.cfg, self.w = cfg, w
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg.get("num_key_value_heads", self.H)
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-5)
        theta = cfg.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.D, 2, device=device, dtype=torch.float32) / self.D))
        self.lm_head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        # Q, K, V fused as our runner fuses them: one GEMM per layer.
        self.qkv = [torch.cat([w[f"model.layers.{i}.self_attn.{p}_proj.weight"] for p in "qkv"]) for i in range(self.L)]
        self.gate_up = [torch.cat([w[f"model.layers.{i}.mlp.{p}_proj.weight"] for p in ("gate", "up")]) for i in range(self.L)]

    def norm(self, x, weight):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * weight

    def rope(self, x, pos):
        ang = pos[:, None].float() * self.inv_freq[None, :]
        cos, sin = torch.cat([ang.cos()] * 2, -1).to(x.dtype), torch.cat([ang.sin()] * 2, -1).to(x.dtype)
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    @staticmethod
    def later_chunk_mask(lq, lk, backend):
        # FlashAttention takes no tensor mask, only lower-right causal bias; cuDNN takes either.
        if backend == "flash":
            return causal_lower_right(lq, lk)
        return torch.ones(lq, lk, dtype=torch.bool, device="cuda").tril(diagonal=lk - lq)

    @torch.no_grad()
    def prefill(self, ids, chunk, backend):
        """Prefills ids (1-D) in chunks into a fresh KV cache; returns the last position's logits."""
        n, dev = ids.numel(), ids.device
        kc = [torch.empty(1, self.Hkv, n, self.D, device=dev, dtype=self.lm_head.dtype) for _ in range(self.L)]
        vc = [torch.empty_like(k) for k in kc]
        x = None
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            pos = torch.arange(s, e, device=dev)
            x = self.w["model.embed_tokens.weight"][ids[s:e]]
            for i in range(self.L):
                p = f"model.layers.{i}."
                h = self.norm(x, self.w[p + "input_layernorm.weight"])
                qkv = h @ self.qkv[i].T
                q, k, v = qkv.split([self.H * self.D, self.Hkv * self.D, self.Hkv * self.D], -1)
                q = self.rope(q.view(e - s, self.H, self.D).transpose(0, 1), pos)
                kc[i][0, :, s:e] = self.rope(k.view(e - s, self.Hkv, self.D).transpose(0, 1), pos)
                vc[i][0, :, s:e] = v.view(e - s, self.Hkv, self.D).transpose(0, 1)
                with sdpa_kernel([BACKENDS[backend]]):
                    # A chunk sees the whole cache before it and itself causally: bottom-right
                    # aligned causal mask, which SDPA's is_causal gives only for Lq == Lk.
                    if s == 0:
                        o = F.scaled_dot_product_attention(q[None], kc[i][:, :, :e], vc[i][:, :, :e], is_causal=True, enable_gqa=True)
                    else:
                        o = F.scaled_dot_product_attention(q[None], kc[i][:, :, :e], vc[i][:, :, :e], attn_mask=self.later_chunk_mask(e - s, e, backend), enable_gqa=True)
                x = x + o[0].transpose(0, 1).reshape(e - s, self.H * self.D) @ self.w[p + "self_attn.o_proj.weight"].T
                h = self.norm(x, self.w[p + "post_attention_layernorm.weight"])
                g, u = (h @ self.gate_up[i].T).chunk(2, -1)
                x = x + (F.silu(g) * u) @ self.w[p + "mlp.down_proj.weight"].T
        last = self.norm(x[-1:], self.w["model.norm.weight"])
        return (last @ self.lm_head.T).float()[0]


def lcg_prompt(seed, n, vocab):
    # The prompt our ttft bench builds (src/bench/ttft.ts lcg): same ids, same first token.
    s, out = seed & 0xFFFFFFFF, []
    for _ in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(s % vocab)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--lengths", default="4096,32768")
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--backends", default="cudnn,flash")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", help="JSON {prompt, logits} of our runner for this model: compare before timing")
    ap.add_argument("--out")
    a = ap.parse_args()
    dev = "cuda"
    cfg, w = load_checkpoint(a.model, dev, torch.float16)
    m = Llama(cfg, w, dev)
    V = cfg["vocab_size"]
    report = {
        "bench": "ttft-peer-pytorch", "date": datetime.now(timezone.utc).isoformat(),
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
        "model": {"dir": a.model, "config": cfg, "parameters": sum(t.numel() for t in w.values())},
        "dtype": "f16", "chunk": a.chunk, "reps": a.reps, "seed": a.seed,
        "timing": "CUDA events around prefill of every chunk + last-position logits + argmax, after one warm-up prefill; median of reps",
        "rows": [],
    }
    if a.check:
        ref = json.load(open(a.check))
        for backend in a.backends.split(","):
            got = m.prefill(torch.tensor(ref["prompt"], device=dev), ref.get("chunk", a.chunk), backend).cpu()
            want = torch.tensor(ref["logits"])
            diff = (got - want).abs().max().item()
            agree = int(got.argmax()) == int(want.argmax())
            print(f"check {backend}: max |Δlogit| {diff:.4f} (logit range {want.min():.2f}..{want.max():.2f}), top-1 {'agrees' if agree else 'DIFFERS'}")
            report.setdefault("check", []).append({"backend": backend, "maxAbsDiff": diff, "top1Agrees": agree})
            if diff > 0.05 * max(1.0, want.abs().max().item()) or not agree:
                raise SystemExit(f"logits differ from our runner's ({backend})")
    for L in [int(x) for x in a.lengths.split(",")]:
        ids = torch.tensor(lcg_prompt(a.seed + L, L, V), device=dev)
        for backend in a.backends.split(","):
            row = {"length": L, "method": "dense", "backend": backend}
            try:
                m.prefill(ids[: min(L, 2 * a.chunk)], a.chunk, backend)
                torch.cuda.synchronize()
                ms = []
                for _ in range(a.reps):
                    t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    t0.record()
                    tok = int(m.prefill(ids, a.chunk, backend).argmax())
                    t1.record()
                    torch.cuda.synchronize()
                    ms.append(t0.elapsed_time(t1))
                row.update(ms=ms, medianMs=statistics.median(ms), firstToken=tok, peakGiB=torch.cuda.max_memory_allocated() / 2**30)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
                row["skipped"] = str(e).splitlines()[0][:300]
            print(json.dumps(row), flush=True)
            report["rows"].append(row)
            if a.out:
                json.dump(report, open(a.out, "w"), indent=1)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
