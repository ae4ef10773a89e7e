#!/usr/bin/python3
"""PyTorch side of kexue's bench/: a JSON-lines server on stdin/stdout.

Requests (one JSON object a line):
  {"cmd": "hello", "threads": T}            -> {"ok": true, "torch": "1.13.1", "threads": T}
  {"cmd": "setup", "case": NAME}           -> {"ok": true} (builds tensors / models for the case)
  {"cmd": "run", "iters": N}               -> {"ok": true, "ms": [per-iteration ms ...]}
  {"cmd": "quit"}
Every case mirrors one in bench/src/cases.ts: same shapes, float32, same thread count. Errors are
answered {"ok": false, "error": "..."} so the driver can report them instead of faking a number.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)

# The BERT-small of the issue and the CLUENER-shaped RoFormer + Efficient GlobalPointer.
BERT = dict(vocab=21128, hidden=256, layers=4, heads=4, ffn=1024, seq=128, batch=16, max_pos=512)
NER = dict(vocab=21128, hidden=256, layers=4, heads=4, ffn=1024, seq=64, batch=16, types=10, head_size=64)


class Layer(nn.Module):
    """Post-LN BERT layer (HF BertLayer without attention-prob dropout, as kexue's fused attention)."""

    def __init__(self, h, heads, ffn, rope, p):
        super().__init__()
        self.heads, self.d, self.rope = heads, h // heads, rope
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out, self.ln1 = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)
        self.inter, self.out, self.ln2 = nn.Linear(h, ffn), nn.Linear(ffn, h), nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(p)

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.d).permute(0, 2, 1, 3)

    def forward(self, x, mask, cos_sin):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        if self.rope:
            q, k = rope(q, *cos_sin), rope(k, *cos_sin)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d)
        if mask is not None:
            s = s.masked_fill(~mask, float('-inf'))
        a = torch.matmul(torch.softmax(s, -1), v)
        B, H, T, d = a.shape
        a = a.permute(0, 2, 1, 3).reshape(B, T, H * d)
        x = self.ln1(x + self.drop(self.attn_out(a)))
        return self.ln2(x + self.drop(self.out(F.gelu(self.inter(x)))))


def rope_tables(T, d):
    inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv.float()[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """Interleaved pairs (x0, x1) rotated by position·θ_i (RoFormer / kexue's layout)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), -1).flatten(-2)


class Encoder(nn.Module):
    def __init__(self, c, rope_on):
        super().__init__()
        h = c['hidden']
        self.rope_on = rope_on
        self.word = nn.Embedding(c['vocab'], h)
        self.pos = None if rope_on else nn.Embedding(c['max_pos'] if 'max_pos' in c else 512, h)
        self.seg = nn.Embedding(2, h)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.drop = nn.Dropout(0.1)
        self.layers = nn.ModuleList(Layer(h, c['heads'], c['ffn'], rope_on, 0.1) for _ in range(c['layers']))
        self.cos_sin = rope_tables(c['seq'], h // c['heads']) if rope_on else None

    def forward(self, ids, mask=None):
        B, T = ids.shape
        x = self.word(ids) + self.seg(torch.zeros_like(ids))
        if self.pos is not None:
            x = x + self.pos(torch.arange(T))[None]
        x = self.drop(self.ln(x))
        m = None if mask is None else mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, m, self.cos_sin)
        return x


class BertMLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c['hidden']
        self.enc = Encoder(c, False)
        self.dense, self.ln = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)
        self.bias = nn.Parameter(torch.zeros(c['vocab']))

    def forward(self, ids):
        x = self.ln(F.gelu(self.dense(self.enc(ids))))
        return F.linear(x, self.enc.word.weight, self.bias)  # tied decoder


class RoFormerEGP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.enc = Encoder(c, True)
        d, n = c['head_size'], c['types']
        self.d, self.types = d, n
        self.p_dense, self.q_dense = nn.Linear(c['hidden'], 2 * d), nn.Linear(2 * d, 2 * n)
        self.cos_sin = rope_tables(c['seq'], d)

    def forward(self, ids, mask):
        x = self.enc(ids, mask)
        p = self.p_dense(x)
        q, k = rope(p[..., 0::2], *self.cos_sin), rope(p[..., 1::2], *self.cos_sin)
        s = torch.einsum('bmd,bnd->bmn', q, k) / math.sqrt(self.d)
        bias = (self.q_dense(p) / 2).transpose(1, 2)  # [B, 2n, T]
        s = s[:, None] + bias[:, 0::2, None, :] + bias[:, 1::2, :, None]
        T = ids.shape[1]
        pad = ~(mask[:, None, :, None] & mask[:, None, None, :])
        tril = torch.tril(torch.ones(T, T, dtype=torch.bool), -1)
        return s.masked_fill(pad, float('-inf')).masked_fill(tril, float('-inf'))


def multilabel_ce(y_pred, y_true):
    """Su's multilabel categorical cross-entropy over rows (−inf scores are masked classes)."""
    y_pred = (1 - 2 * y_true) * y_pred
    neg = y_pred - y_true * 1e12
    pos = y_pred - (1 - y_true) * 1e12
    zeros = torch.zeros_like(y_pred[..., :1])
    return (torch.logsumexp(torch.cat([neg, zeros], -1), -1) + torch.logsumexp(torch.cat([pos, zeros], -1), -1)).mean()


def gp_loss(scores, labels):
    B, H, T, _ = scores.shape
    s = scores.reshape(B * H, T * T)
    s = torch.where(torch.isinf(s), torch.full_like(s, -1e12), s)
    return multilabel_ce(s, labels.reshape(B * H, T * T))


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def setup(name):
    """Returns a closure running one iteration of the case."""
    if name.startswith('matmul-'):
        m, k, n = {'matmul-1024': (1024, 1024, 1024), 'matmul-2048x256x1024': (2048, 256, 1024),
                   'matmul-2048x256x21128': (2048, 256, 21128)}[name]
        a = randn(m, k)
        if name == 'matmul-2048x256x21128':
            b = randn(n, k)  # the tied decoder: x · tableᵀ
            return lambda: torch.matmul(a, b.t())
        b = randn(k, n)
        return lambda: torch.matmul(a, b)
    if name == 'dispatch':
        a, b = randn(4), randn(4)

        def adds():
            for _ in range(1000):
                a + b
        return adds
    if name == 'layernorm':
        x, g, b = randn(8192, 1024), randn(1024), randn(1024)
        return lambda: F.layer_norm(x, (1024,), g, b, 1e-12)
    if name == 'softmax':
        x = randn(8192, 1024)
        return lambda: torch.softmax(x, -1)
    if name == 'softmax-2048x1000':
        x = randn(2048, 1000)
        return lambda: torch.softmax(x, -1)
    if name == 'gelu':
        x = randn(8192, 1024)
        return lambda: F.gelu(x)
    if name == 'cross-entropy':
        x = randn(2048, 21128).requires_grad_()
        y = torch.randint(0, 21128, (2048,))

        def ce():
            x.grad = None
            F.cross_entropy(x, y).backward()
        return ce
    if name in ('attention-forward', 'attention-backward'):
        B, H, T, D = 16, 4, 128, 64
        q, k, v = (randn(B, H, T, D).requires_grad_() for _ in range(3))
        go = randn(B, H, T, D)

        def fwd():
            s = torch.matmul(q, k.transpose(-1, -2)) * (1 / math.sqrt(D))
            return torch.matmul(torch.softmax(s, -1), v)
        if name == 'attention-forward':
            return lambda: fwd().detach()

        def fb():
            for t in (q, k, v):
                t.grad = None
            fwd().backward(go)
        return fb
    if name in ('tiger-10m', 'adamw-10m'):
        p = randn(10_000_000).requires_grad_()
        p.grad = randn(10_000_000) * 1e-3
        opt = torch.optim.AdamW([p], lr=1e-3)
        return opt.step
    if name == 'bert-small-train-step':
        model = BertMLM(BERT).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, BERT['vocab'], (BERT['batch'], BERT['seq']), generator=g)
        labels = torch.randint(0, BERT['vocab'], (BERT['batch'], BERT['seq']), generator=g)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(ids)
            F.cross_entropy(logits.reshape(-1, BERT['vocab']), labels.reshape(-1)).backward()
            opt.step()
        return step
    if name == 'roformer-gp-train-step':
        c = NER
        model = RoFormerEGP(c).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
        g = torch.Generator().manual_seed(1)
        B, T = c['batch'], c['seq']
        ids = torch.randint(0, c['vocab'], (B, T), generator=g)
        lens = torch.randint(T // 2, T + 1, (B,), generator=g)
        mask = torch.arange(T)[None, :] < lens[:, None]
        labels = (torch.rand(B, c['types'], T, T, generator=g) < 0.002).float()

        def step():
            opt.zero_grad(set_to_none=True)
            gp_loss(model(ids, mask), labels).backward()
            opt.step()
        return step
    raise KeyError(f'unknown case {name}')


def main():
    fn = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            cmd = req['cmd']
            if cmd == 'hello':
                torch.set_num_threads(int(req['threads']))
                out = {'ok': True, 'torch': torch.__version__, 'threads': torch.get_num_threads()}
            elif cmd == 'setup':
                fn = None
                fn = setup(req['case'])
                out = {'ok': True}
            elif cmd == 'run':
                ms = []
                with torch.enable_grad():
                    for _ in range(int(req['iters'])):
                        t0 = time.perf_counter()
                        fn()
                        ms.append((time.perf_counter() - t0) * 1e3)
                out = {'ok': True, 'ms': ms}
            elif cmd == 'quit':
                return
            else:
                out = {'ok': False, 'error': f'unknown cmd {cmd}'}
        except Exception as e:  # reported to the driver, never faked
            out = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
