#!/usr/bin/env python3
"""PyTorch side of bench/src/gpu_e2e.ts: the BERT-base MLM training step under autocast.

The model mirrors kexue's BertForMaskedLM (packages/models/src/bert/model.ts) layer for layer:
word + learned position + token-type embeddings, LayerNorm, dropout; 12 post-LN layers (separate
query/key/value projections, attention without dropout on the probabilities as kexue's fused
attention has none, dense + dropout + LayerNorm(x + residual), FFN with erf GELU); the MLM head's
transform (dense, GELU, LayerNorm) and a decoder tied to the word embeddings plus its own bias; no
pooler. The loss is the cross-entropy over the full vocabulary at every position. Mixed precision is
torch.autocast (float32 master weights, as kexue's PrecisionPolicy) with a GradScaler for float16;
the optimizer is AdamW (lr 1e-4, torch's defaults otherwise, as kexue's), fused where available.
This is eager PyTorch (no torch.compile), the baseline most training scripts run.

Driven by gpu_e2e.ts as a JSON-lines server on stdin/stdout:
  {"cmd": "hello"}                              -> {"ok": true, "torch": V, "cuda": bool, "gpu": NAME|null, "reason": ...}
  {"cmd": "setup", "dtype": "bf16"|"fp16", "size": "base"|"tiny", "device": "cuda"|"cuda:N"|"cpu"}
                                                -> {"ok": true, "fused": bool} (builds the model once per size
                                                   and device, a fresh optimizer and scaler per call)
  {"cmd": "run", "iters": N}                    -> {"ok": true, "ms": [...], "loss": L, "skipped": S, "peak_bytes": B}
  {"cmd": "quit"}
Errors are answered {"ok": false, "error": "..."} so that the driver reports them.

By hand: `python3 bench/torch_gpu_e2e.py --selftest [--device cpu] [--tiny] [--steps N]` runs a
few steps of each dtype and prints their times (a smoke test of the model code on any machine; on
the CPU autocast is off, so both "dtypes" run in float32 there).
"""
import argparse
import contextlib
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The sizes of gpu_e2e.ts (BERT-base with the Chinese vocabulary) and a tiny model for smoke tests.
SIZES = {
    "base": dict(vocab=21128, hidden=768, layers=12, heads=12, ffn=3072, seq=128, batch=32, max_pos=512),
    "tiny": dict(vocab=64, hidden=32, layers=2, heads=2, ffn=64, seq=16, batch=4, max_pos=512),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LEARNING_RATE = 1e-4
DROPOUT = 0.1
LN_EPS = 1e-12


class Layer(nn.Module):
    """HF BertLayer, post-LN, with no dropout on the attention probabilities."""

    def __init__(self, h, heads, ffn):
        super().__init__()
        self.heads, self.d = heads, h // heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out, self.ln1 = nn.Linear(h, h), nn.LayerNorm(h, eps=LN_EPS)
        self.inter, self.out, self.ln2 = nn.Linear(h, ffn), nn.Linear(ffn, h), nn.LayerNorm(h, eps=LN_EPS)
        self.drop = nn.Dropout(DROPOUT)

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.d).transpose(1, 2)

    def forward(self, x):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        a = attention(q, k, v)
        B, H, T, d = a.shape
        a = a.transpose(1, 2).reshape(B, T, H * d)
        x = self.ln1(x + self.drop(self.attn_out(a)))
        return self.ln2(x + self.drop(self.out(F.gelu(self.inter(x)))))


def attention(q, k, v):
    """softmax(q·kᵀ/√d)·v: the fused kernel where this torch has one (2.0+), else spelled out."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.matmul(torch.softmax(s, -1), v)


class MaskedLM(nn.Module):
    """BertForMaskedLM without a pooler: embeddings, encoder, MLM head with a tied decoder."""

    def __init__(self, c):
        super().__init__()
        h = c["hidden"]
        self.word = nn.Embedding(c["vocab"], h)
        self.pos = nn.Embedding(c["max_pos"], h)
        self.token_type = nn.Embedding(2, h)
        self.emb_ln = nn.LayerNorm(h, eps=LN_EPS)
        self.drop = nn.Dropout(DROPOUT)
        self.layers = nn.ModuleList(Layer(h, c["heads"], c["ffn"]) for _ in range(c["layers"]))
        self.transform = nn.Linear(h, h)
        self.transform_ln = nn.LayerNorm(h, eps=LN_EPS)
        self.decoder_bias = nn.Parameter(torch.zeros(c["vocab"]))
        # BERT's initialisation: truncated normal (std 0.02) weights, zero biases, unit LayerNorms
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def forward(self, ids, types):
        T = ids.shape[1]
        x = self.word(ids) + self.token_type(types) + self.pos.weight[:T]
        x = self.drop(self.emb_ln(x))
        for layer in self.layers:
            x = layer(x)
        x = self.transform_ln(F.gelu(self.transform(x)))
        return F.linear(x, self.word.weight, self.decoder_bias)


class Bench:
    """One model of a size on a device; setup(dtype) readies a fresh optimizer for that dtype."""

    def __init__(self, size, device):
        self.c = c = SIZES[size]
        self.device = device
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        self.model = MaskedLM(c).to(device).train()
        n = c["batch"] * c["seq"]
        self.ids = torch.randint(0, c["vocab"], (c["batch"], c["seq"]), generator=gen).to(device)
        self.types = torch.zeros_like(self.ids)
        self.labels = torch.randint(0, c["vocab"], (n,), generator=gen).to(device)
        self.opt = self.scaler = None
        self.fused = False

    def setup(self, dtype):
        self.dtype = DTYPES[dtype]
        params = list(self.model.parameters())
        self.opt, self.fused = None, False
        if self.device.type == "cuda":
            try:
                self.opt, self.fused = torch.optim.AdamW(params, lr=LEARNING_RATE, fused=True), True
            except (TypeError, RuntimeError, ValueError):
                pass
        if self.opt is None:
            self.opt = torch.optim.AdamW(params, lr=LEARNING_RATE)
        # float16 needs loss scaling (GradScaler's dynamic scheme, as kexue's LossScaler). Autocast and
        # the scaler run on CUDA only: on the CPU (smoke tests) everything stays float32, since CPU
        # autocast differs between torch versions.
        enabled = dtype == "fp16" and self.device.type == "cuda"
        if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
            self.scaler = torch.amp.GradScaler("cuda", enabled=enabled)
        else:
            self.scaler = torch.cuda.amp.GradScaler(enabled=enabled)
        self.skipped = 0

    def step(self):
        """One training step; returns the loss tensor (not read, so that nothing waits here)."""
        self.opt.zero_grad(set_to_none=True)
        cuda = self.device.type == "cuda"
        with torch.autocast(device_type="cuda", dtype=self.dtype) if cuda else contextlib.nullcontext():
            logits = self.model(self.ids, self.types)
            loss = F.cross_entropy(logits.view(-1, self.c["vocab"]).float(), self.labels)
        before = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if before is not None and self.scaler.get_scale() < before:
            self.skipped += 1
        return loss

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, iters):
        """Per-step milliseconds of `iters` steps, each timed alone (synchronized before reading the clock)."""
        ms, loss = [], None
        self.sync()
        for _ in range(iters):
            t0 = time.perf_counter()
            loss = self.step()
            self.sync()
            ms.append((time.perf_counter() - t0) * 1e3)
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else 0
        return {"ms": ms, "loss": float(loss.item()), "skipped": self.skipped, "peak_bytes": peak}


def hello():
    cuda = torch.cuda.is_available()
    return {
        "ok": True,
        "torch": torch.__version__,
        "cuda": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "reason": None if cuda else f"torch {torch.__version__} sees no CUDA device (built for CUDA {torch.version.cuda})",
    }


def serve():
    benches = {}
    current = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "hello":
                reply = hello()
            elif req["cmd"] == "setup":
                key = (req.get("size", "base"), req.get("device", "cuda"))
                if key[1] != "cpu" and not torch.cuda.is_available():
                    raise RuntimeError("CUDA is not available to PyTorch")
                if key not in benches:
                    benches[key] = Bench(key[0], torch.device(key[1]))
                current = benches[key]
                current.setup(req["dtype"])
                reply = {"ok": True, "fused": current.fused}
            elif req["cmd"] == "run":
                if current is None:
                    raise RuntimeError("run before setup")
                reply = {"ok": True, **current.run(int(req["iters"]))}
            elif req["cmd"] == "quit":
                return
            else:
                raise ValueError(f"unknown command {req['cmd']!r}")
        except Exception as e:  # the driver reports it beside kexue's numbers
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def selftest(args):
    device = torch.device(args.device)
    bench = Bench("tiny" if args.tiny else "base", device)
    params = sum(p.numel() for p in bench.model.parameters())
    print(f"torch {torch.__version__} on {device}: {params} parameters, sizes {bench.c}")
    for dtype in DTYPES:
        bench.setup(dtype)
        r = bench.run(args.steps)
        ms = sorted(r["ms"])
        print(f"{dtype}: median {ms[len(ms) // 2]:.2f} ms/step, last loss {r['loss']:.4f}, "
              f"skipped {r['skipped']}, fused AdamW {bench.fused}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--selftest", action="store_true", help="run a few steps of each dtype and print them")
    p.add_argument("--device", default="cuda", help="selftest device (default cuda)")
    p.add_argument("--tiny", action="store_true", help="selftest on the tiny model")
    p.add_argument("--steps", type=int, default=3, help="selftest steps per dtype")
    args = p.parse_args()
    if args.selftest:
        selftest(args)
    else:
        serve()


if __name__ == "__main__":
    main()
