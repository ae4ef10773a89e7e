#!/usr/bin/python3
"""PyTorch side of kexue's bench/: a JSON-lines server on stdin/stdout.

Requests (one JSON object a line):
  {"cmd": "hello", "threads": T}            -> {"ok": true, "torch": "1.13.1", "threads": T}
  {"cmd": "setup", "case": NAME, "args": {...}} -> {"ok": true} (builds tensors / models for the case)
  {"cmd": "run", "iters": N}               -> {"ok": true, "ms": [per-iteration ms ...]}
  {"cmd": "quit"}
Every case mirrors one in bench/src/cases.ts: same shapes, float32, same thread count. Errors are
answered {"ok": false, "error": "..."} so the driver can report them instead of faking a number.

Two more commands for the BERT inference cases (bench/src/bert_infer.ts), one JSON argument each,
one JSON line out:
  torch_bench.py export-bert '{"config": {...}, "seed": S, "dir": D}'
      writes D/model.safetensors (HF BertModel names) and D/model.onnx (torch.onnx.export)
  torch_bench.py footprint '{"config": {...}, "weights": F, "threads": T, "points": [[B, T], ...]}'
      -> {"ok": true, "load_ms": ..., "base_rss_bytes": ..., "peak_rss_bytes": ...}
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'golden'))
from common import write_safetensors  # noqa: E402  (the fixtures' safetensors writer)

torch.manual_seed(0)

# The BERT-small of the issue and the CLUENER-shaped RoFormer + Efficient GlobalPointer.
BERT = dict(vocab=21128, hidden=256, layers=4, heads=4, ffn=1024, seq=128, batch=16, max_pos=512)
NER = dict(vocab=21128, hidden=256, layers=4, heads=4, ffn=1024, seq=64, batch=16, types=10, head_size=64)


class SelfAttention(nn.Module):
    """HF BertSelfAttention (query, key, value) without dropout on the probabilities (as kexue's fused
    attention); RoFormer's rotary positions on q and k when `rope`. The mask is HF's additive one."""

    def __init__(self, h, heads, rope_on):
        super().__init__()
        self.heads, self.d, self.rope_on = heads, h // heads, rope_on
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def split(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.d).permute(0, 2, 1, 3)

    def forward(self, x, add_mask, cos_sin):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        if self.rope_on:
            q, k = rope(q, *cos_sin), rope(k, *cos_sin)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.d)
        if add_mask is not None:
            s = s + add_mask
        a = torch.matmul(torch.softmax(s, -1), v)
        B, H, T, d = a.shape
        return a.permute(0, 2, 1, 3).reshape(B, T, H * d)


class DenseNorm(nn.Module):
    """HF BertSelfOutput / BertOutput: dense, dropout, LayerNorm(x + residual)."""

    def __init__(self, i, h, p):
        super().__init__()
        self.dense, self.LayerNorm, self.dropout = nn.Linear(i, h), nn.LayerNorm(h, eps=1e-12), nn.Dropout(p)

    def forward(self, x, residual):
        return self.LayerNorm(residual + self.dropout(self.dense(x)))


class Attention(nn.Module):
    """HF BertAttention: attention.self, attention.output."""

    def __init__(self, h, heads, rope_on, p):
        super().__init__()
        setattr(self, 'self', SelfAttention(h, heads, rope_on))
        self.output = DenseNorm(h, h, p)

    def forward(self, x, add_mask, cos_sin):
        return self.output(getattr(self, 'self')(x, add_mask, cos_sin), x)


class Layer(nn.Module):
    """HF BertLayer (post-LN): attention, intermediate (dense + GELU), output."""

    def __init__(self, h, heads, ffn, rope_on, p):
        super().__init__()
        self.attention = Attention(h, heads, rope_on, p)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(h, ffn)
        self.output = DenseNorm(ffn, h, p)

    def forward(self, x, add_mask, cos_sin):
        a = self.attention(x, add_mask, cos_sin)
        return self.output(F.gelu(self.intermediate.dense(a)), a)


def rope_tables(T, d):
    inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv.float()[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """Interleaved pairs (x0, x1) rotated by position·θ_i (RoFormer / kexue's layout)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), -1).flatten(-2)


class Embeddings(nn.Module):
    """HF BertEmbeddings (RoFormerEmbeddings without the positions table when `rope_on`)."""

    def __init__(self, c, rope_on, p):
        super().__init__()
        h = c['hidden']
        self.word_embeddings = nn.Embedding(c['vocab'], h)
        self.position_embeddings = None if rope_on else nn.Embedding(c.get('max_pos', 512), h)
        self.token_type_embeddings = nn.Embedding(2, h)
        self.LayerNorm = nn.LayerNorm(h, eps=1e-12)
        self.dropout = nn.Dropout(p)
        # HF's position ids, sliced to the input's length (so that ONNX export keeps T dynamic)
        self.register_buffer('position_ids', torch.arange(c.get('max_pos', 512))[None], persistent=False)

    def forward(self, ids, types):
        x = self.word_embeddings(ids) + self.token_type_embeddings(types)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(self.position_ids[:, :ids.shape[1]])
        return self.dropout(self.LayerNorm(x))


class BertModel(nn.Module):
    """HF BertModel (embeddings, encoder.layer.N, pooler) or RoFormerModel (`rope_on`, no pooler):
    its state dict carries Hugging Face's names, as kexue's BertModel."""

    def __init__(self, c, rope_on=False, pooler=False, p=0.1):
        super().__init__()
        h = c['hidden']
        self.embeddings = Embeddings(c, rope_on, p)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Layer(h, c['heads'], c['ffn'], rope_on, p) for _ in range(c['layers']))
        if pooler:
            self.pooler = nn.Module()
            self.pooler.dense = nn.Linear(h, h)
        self.cos_sin = rope_tables(c['seq'], h // c['heads']) if rope_on else None

    def forward(self, ids, mask=None, types=None):
        """ids [B, T]; mask [B, T] (1 or True = real token) or None → (last hidden state, pooled or None)."""
        x = self.embeddings(ids, torch.zeros_like(ids) if types is None else types)
        add_mask = None
        if mask is not None:  # HF's extended mask: 0 where real, the float minimum where padded
            add_mask = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, add_mask, self.cos_sin)
        pooled = torch.tanh(self.pooler.dense(x[:, 0])) if hasattr(self, 'pooler') else None
        return x, pooled


class BertMLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c['hidden']
        self.bert = BertModel(c)
        self.dense, self.ln = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)
        self.bias = nn.Parameter(torch.zeros(c['vocab']))

    def forward(self, ids):
        x = self.ln(F.gelu(self.dense(self.bert(ids)[0])))
        return F.linear(x, self.bert.embeddings.word_embeddings.weight, self.bias)  # tied decoder


class RoFormerEGP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.enc = BertModel(c, rope_on=True)
        d, n = c['head_size'], c['types']
        self.d, self.types = d, n
        self.p_dense, self.q_dense = nn.Linear(c['hidden'], 2 * d), nn.Linear(2 * d, 2 * n)
        self.cos_sin = rope_tables(c['seq'], d)

    def forward(self, ids, mask):
        x = self.enc(ids, mask)[0]
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


def read_safetensors(path):
    """The float32 tensors of a .safetensors file (8-byte header length, JSON header, raw data)."""
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        if e['dtype'] != 'F32':
            raise ValueError(f'{path}: {name} is {e["dtype"]}, only F32 is read here')
        a, b = e['data_offsets']
        out[name] = torch.frombuffer(data, dtype=torch.float32, count=(b - a) // 4, offset=8 + n + a).reshape(e['shape'])
    return out


def hf_init(model, seed):
    """Hugging Face's BERT initialisation: weights N(0, 0.02), biases 0, LayerNorm γ 1 and β 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'LayerNorm' in name:
                p.fill_(1.0 if name.endswith('weight') else 0.0)
            elif name.endswith('bias'):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def inference_bert(config, weights):
    """BertModel with a pooler, eval mode, weights from a safetensors file (HF names), strict."""
    model = BertModel(config, pooler=True).eval()
    model.load_state_dict(read_safetensors(weights), strict=True)
    return model


class OnnxBert(nn.Module):
    """HF's ONNX signature: int64 input_ids, attention_mask, token_type_ids -> last_hidden_state, pooler_output."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids, attention_mask, token_type_ids)


def export_bert(req):
    """Random HF-initialised weights to D/model.safetensors and the same model to D/model.onnx."""
    c, d = req['config'], req['dir']
    model = BertModel(c, pooler=True).eval()
    hf_init(model, int(req['seed']))
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, 'model.safetensors'), {k: v.contiguous() for k, v in model.state_dict().items()})
    ids = torch.randint(0, c['vocab'], (2, 16), generator=torch.Generator().manual_seed(1))
    ones = torch.ones_like(ids)
    axes = {0: 'batch', 1: 'sequence'}
    torch.onnx.export(OnnxBert(model), (ids, ones, torch.zeros_like(ids)), os.path.join(d, 'model.onnx'),
                      input_names=['input_ids', 'attention_mask', 'token_type_ids'],
                      output_names=['last_hidden_state', 'pooler_output'],
                      dynamic_axes={'input_ids': axes, 'attention_mask': axes, 'token_type_ids': axes,
                                    'last_hidden_state': axes, 'pooler_output': {0: 'batch'}},
                      opset_version=17, do_constant_folding=True)
    return {'ok': True, 'torch': torch.__version__, 'opset': 17}


def vm_bytes(field):
    """VmRSS / VmHWM of this process from /proc/self/status, bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def bert_inputs(config, batch, seq):
    ids = torch.randint(0, config['vocab'], (batch, seq), generator=torch.Generator().manual_seed(2))
    return ids, torch.ones_like(ids)


def footprint(req):
    """Load time (module built, state dict loaded) and peak RSS after running every point once."""
    torch.set_num_threads(int(req['threads']))
    base = vm_bytes('VmRSS')
    t0 = time.perf_counter()
    model = inference_bert(req['config'], req['weights'])
    load_ms = (time.perf_counter() - t0) * 1e3
    with torch.no_grad():
        for b, t in req['points']:
            model(*bert_inputs(req['config'], b, t))
    return {'ok': True, 'load_ms': load_ms, 'base_rss_bytes': base, 'peak_rss_bytes': vm_bytes('VmHWM')}


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def setup(name, args):
    """Returns a closure running one iteration of the case (args: what bench/src/cases.ts passes)."""
    if name.startswith('bert-') and '-infer-' in name:
        model = inference_bert(args['config'], args['weights'])
        ids, mask = bert_inputs(args['config'], int(args['batch']), int(args['seq']))

        def infer():
            with torch.no_grad():
                model(ids, mask)
        return infer
    if name == 'idle-neighbour':
        n = int(args['n'])
        a, b = randn(n, n), randn(n, n)
        return lambda: torch.matmul(a, b)
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
                fn = setup(req['case'], req.get('args', {}))
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
    if len(sys.argv) == 3 and sys.argv[1] in ('export-bert', 'footprint'):
        try:
            result = (export_bert if sys.argv[1] == 'export-bert' else footprint)(json.loads(sys.argv[2]))
        except Exception as e:  # reported to the driver, never faked
            result = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        print(json.dumps(result))
    else:
        main()
