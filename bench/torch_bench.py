#!/usr/bin/python3
"""PyTorch side of kexue's bench/: a JSON-lines server on stdin/stdout.

Requests (one JSON object a line):
  {"cmd": "hello", "threads": T}            -> {"ok": true, "torch": "1.13.1", "threads": T}
  {"cmd": "setup", "case": NAME, "args": {...}} -> {"ok": true} (builds tensors / models for the case;
      the cases given kexue's output to compare add "max_abs_diff", and fail beyond AGREEMENT_TOLERANCE)
  {"cmd": "run", "iters": N}               -> {"ok": true, "ms": [per-iteration ms ...]}
  {"cmd": "quit"}
Every case mirrors one in bench/src/cases.ts (or sentence_cases.ts): same shapes, float32, same
thread count. Errors are answered {"ok": false, "error": "..."} so the driver can report them
instead of faking a number.

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

    def blocks(self, ids, mask=None, types=None):
        """Each block's output [B, T, H] in turn; ids [B, T]; mask [B, T] (1 or True = real token) or None."""
        x = self.embeddings(ids, torch.zeros_like(ids) if types is None else types)
        add_mask = None
        if mask is not None:  # HF's extended mask: 0 where real, the float minimum where padded
            add_mask = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, add_mask, self.cos_sin)
            yield x

    def forward(self, ids, mask=None, types=None):
        """(last hidden state, pooled or None); arguments as blocks()."""
        for x in self.blocks(ids, mask, types):
            pass  # only the last block's output is kept, so each block's activations are freed as the next runs
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


# T5 PEGASUS-style mT5 v1.1 (bench/src/cases.ts T5_SMALL): small's widths, 2 + 2 layers, dropout off.
T5 = dict(vocab=50000, d_model=512, d_kv=64, heads=6, d_ff=1024, layers=2, buckets=32, max_distance=128, eps=1e-6,
          batch=8, source=128, target=32, new_tokens=32, start=0, eos=1)


def t5_bucket(rel, bidirectional, num_buckets, max_distance):
    """T5's relative position bucket of rel = key position - query position (transformers' arithmetic)."""
    bucket = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (rel > 0).long() * num_buckets
        n = rel.abs()
    else:
        n = (-rel).clamp(min=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(n < max_exact, n, large)


class T5Norm(nn.Module):
    """T5LayerNorm: x * rsqrt(mean(x^2) + eps) * w, no mean, no bias."""

    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class T5Attn(nn.Module):
    """q, k, v, o without biases; scores q k^T without 1/sqrt(d_kv), plus the position bias and an additive mask."""

    def __init__(self, c, table):
        super().__init__()
        self.h, self.d = c['heads'], c['d_kv']
        inner = self.h * self.d
        self.q, self.k, self.v = (nn.Linear(c['d_model'], inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, c['d_model'], bias=False)
        self.relative_attention_bias = nn.Embedding(c['buckets'], self.h) if table else None

    def heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.h, self.d).transpose(1, 2)

    def attend(self, q, k, v, bias, mask):
        s = torch.matmul(q, k.transpose(-1, -2))
        if bias is not None:
            s = s + bias
        if mask is not None:
            s = s + mask
        a = torch.matmul(torch.softmax(s, -1), v)
        B, H, T, d = a.shape
        return self.o(a.transpose(1, 2).reshape(B, T, H * d))

    def forward(self, x, kv, bias, mask):
        return self.attend(self.heads(self.q(x)), self.heads(self.k(kv)), self.heads(self.v(kv)), bias, mask)


class T5Blk(nn.Module):
    """Pre-norm block: self-attention, (decoder) cross-attention, gated-GELU FFN (tanh) without biases."""

    def __init__(self, c, decoder, first):
        super().__init__()
        d, f = c['d_model'], c['d_ff']
        self.sa, self.ln0 = T5Attn(c, first), T5Norm(d, c['eps'])
        self.ca, self.ln1 = (T5Attn(c, False), T5Norm(d, c['eps'])) if decoder else (None, None)
        self.wi_0, self.wi_1, self.wo = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)
        self.ln2 = T5Norm(d, c['eps'])

    def ff(self, x):
        h = self.ln2(x)
        return x + self.wo(F.gelu(self.wi_0(h), approximate='tanh') * self.wi_1(h))

    def forward(self, x, bias, mask, enc=None, cross_bias=None, cross_mask=None):
        h = self.ln0(x)
        x = x + self.sa(h, h, bias, mask)
        if self.ca is not None:
            x = x + self.ca(self.ln1(x), enc, cross_bias, cross_mask)
        return self.ff(x)

    def step(self, x, cache, bias, cross_bias, cross_mask):
        """One token per row: appends its self-attention K/V to cache['k'], cache['v']; cross K/V cached once."""
        h = self.ln0(x)
        k, v = self.sa.heads(self.sa.k(h)), self.sa.heads(self.sa.v(h))
        if cache['k'] is not None:
            k, v = torch.cat([cache['k'], k], 2), torch.cat([cache['v'], v], 2)
        cache['k'], cache['v'] = k, v
        x = x + self.sa.attend(self.sa.heads(self.sa.q(h)), k, v, bias, None)
        x = x + self.ca.attend(self.ca.heads(self.ca.q(self.ln1(x))), cache['ck'], cache['cv'], cross_bias, cross_mask)
        return self.ff(x)


class T5Model(nn.Module):
    """mT5 v1.1 / T5 PEGASUS: shared input embedding, position tables in block 0 of each stack, the
    decoder's table also biasing cross-attention, untied lm_head on decoder output * d_model^-0.5."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.shared = nn.Embedding(c['vocab'], c['d_model'])
        self.encoder = nn.ModuleList(T5Blk(c, False, i == 0) for i in range(c['layers']))
        self.decoder = nn.ModuleList(T5Blk(c, True, i == 0) for i in range(c['layers']))
        self.enc_norm, self.dec_norm = T5Norm(c['d_model'], c['eps']), T5Norm(c['d_model'], c['eps'])
        self.lm_head = nn.Linear(c['d_model'], c['vocab'], bias=False)

    def bias(self, stack, queries, keys, start=0):
        """[1, H, queries, keys] from the stack's table: bidirectional in the encoder, unidirectional in the decoder."""
        rel = torch.arange(keys)[None, :] - torch.arange(start, start + queries)[:, None]
        b = t5_bucket(rel, stack is self.encoder, self.c['buckets'], self.c['max_distance'])
        return stack[0].sa.relative_attention_bias(b).permute(2, 0, 1)[None]

    def logits(self, x):
        return self.lm_head(self.dec_norm(x) * self.c['d_model'] ** -0.5)

    def encode(self, ids, mask=None):
        bias = self.bias(self.encoder, ids.shape[1], ids.shape[1])
        x = self.shared(ids)
        for blk in self.encoder:
            x = blk(x, bias, mask)
        return self.enc_norm(x)

    def forward(self, ids, dec_ids):
        """Teacher-forced logits [B, T, vocab] (all tokens real)."""
        enc = self.encode(ids)
        S, T = ids.shape[1], dec_ids.shape[1]
        causal = torch.full((T, T), float('-inf')).triu(1)
        bias, cross_bias = self.bias(self.decoder, T, T) + causal, self.bias(self.decoder, T, S)
        x = self.shared(dec_ids)
        for blk in self.decoder:
            x = blk(x, bias, None, enc, cross_bias)
        return self.logits(x)

    def start(self, ids, mask):
        """Encodes once; each decoder block's cache with its cross-attention K/V."""
        enc = self.encode(ids, mask)
        return [dict(k=None, v=None, ck=b.ca.heads(b.ca.k(enc)), cv=b.ca.heads(b.ca.v(enc))) for b in self.decoder]

    def step(self, tokens, caches, pos, mask):
        """Next-token log-probabilities [rows, vocab] for one token per row at position pos."""
        bias, cross_bias = self.bias(self.decoder, 1, pos + 1, pos), self.bias(self.decoder, 1, mask.shape[-1], pos)
        x = self.shared(tokens[:, None])
        for blk, cache in zip(self.decoder, caches):
            x = blk.step(x, cache, bias, cross_bias, mask)
        return torch.log_softmax(self.logits(x)[:, 0], -1)


def t5_additive_mask(mask):
    """[B, S] bool (True = real) -> [B, 1, 1, S], 0 where real and -inf where padded."""
    return torch.zeros(mask.shape, dtype=torch.float32).masked_fill(~mask, float('-inf'))[:, None, None, :]


def t5_greedy(model, ids, mask, n):
    c = model.c
    caches = model.start(ids, mask)
    last = torch.full((ids.shape[0],), c['start'], dtype=torch.long)
    out = []
    for t in range(n):
        lp = model.step(last, caches, t, mask)
        lp[:, c['eos']] = float('-inf')  # the end token held off: every row makes n tokens
        last = lp.argmax(-1)
        out.append(last)
    return torch.stack(out, 1)


def t5_beam(model, ids, mask, k, n):
    """Beam search of every row's k beams batched ([B·k] rows): the global top k of beams × tokens per row."""
    c = model.c
    B = ids.shape[0]
    caches = model.start(ids, mask)
    lp = model.step(torch.full((B,), c['start'], dtype=torch.long), caches, 0, mask)
    lp[:, c['eos']] = float('-inf')
    scores, tokens = lp.topk(k, -1)  # [B, k]
    rows = torch.arange(B).repeat_interleave(k)
    seqs, scores = tokens.reshape(B * k, 1), scores.reshape(B * k)
    for t in range(1, n):
        for cache in caches:
            for key in cache:
                cache[key] = cache[key].index_select(0, rows)
        mask = mask.index_select(0, rows)
        lp = model.step(seqs[:, -1], caches, t, mask)
        lp[:, c['eos']] = float('-inf')
        V = lp.shape[1]
        top, idx = (scores[:, None] + lp).view(B, k * V).topk(k, -1)
        rows = (idx // V + torch.arange(B)[:, None] * k).reshape(-1)
        seqs = torch.cat([seqs[rows], (idx % V).reshape(-1, 1)], 1)
        scores = top.reshape(-1)
    return seqs.view(B, k, n)[:, 0]


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


def sentence_vectors(model, ids, pad, batch):
    """SentenceEncoder.encode's work on token ids (lists, [CLS] and [SEP] included): rows sorted longest
    first (ties in input order), batches of `batch` padded with `pad`, first-last-avg (the means over
    real tokens of block 0's output and of the last block's, averaged); float32 [N, H] in input order."""
    order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
    with torch.inference_mode():
        out = torch.empty(len(ids), model.embeddings.word_embeddings.embedding_dim)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            width = len(ids[rows[0]])
            lengths = torch.tensor([len(ids[r]) for r in rows])
            padded = torch.tensor([ids[r] + [pad] * (width - len(ids[r])) for r in rows])
            mask = torch.arange(width)[None, :] < lengths[:, None]
            first = None
            for x in model.blocks(padded, mask):
                first = x if first is None else first
            real = mask[..., None].to(x.dtype)
            out[rows] = ((first * real).sum(1) + (x * real).sum(1)) / (2 * lengths[:, None])
    return out


def whitening_fit(x, beta, gamma, k):
    """Whitening.fit's math: μ and Σ_β = (x − βμ)ᵀ(x − βμ)/N in float64, its eigendecomposition, the
    kernel UΛ^(−γ/2) (largest eigenvalues first, k columns) and bias −βμ·kernel, both float32; k may
    not exceed the numerical rank of Σ_β (eigenvalues above D·2⁻²³·λ_max)."""
    x = x.double()
    mean = x.mean(0)
    centred = x - beta * mean
    values, vectors = torch.linalg.eigh(centred.T @ centred / x.shape[0])
    rank = int((values > values[-1] * x.shape[1] * 2.0 ** -23).sum())
    if k > rank:
        raise ValueError(f'k = {k} exceeds the numerical rank {rank} of the covariance')
    kernel = vectors[:, -k:].flip(1) * values[-k:].flip(0) ** (-gamma / 2)
    return kernel.float(), (-beta * mean @ kernel).float()


# PyTorch's output against kexue's beyond this (max |difference|) fails the case's setup: not the same computation.
AGREEMENT_TOLERANCE = 1e-4


def linear_attention_rope(q, k, v, cos, sin, chunk):
    """Causal linear attention, φ = elu + 1, RoPE on φ(q), φ(k) in the numerator only, in chunks
    (bench/src/rope_cases.ts; @kexue/models' linearAttention)."""
    B, H, T, D = q.shape
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    rq, rk = rope(fq, cos, sin), rope(fk, cos, sin)
    n = T // chunk
    tri = torch.tril(torch.ones(chunk, chunk))
    earlier = torch.tril(torch.ones(n, n), -1)

    def sums(a, b, c):
        ac, bc, cc = (x.reshape(B, H, n, chunk, x.shape[-1]) for x in (a, b, c))
        intra = torch.matmul(torch.matmul(ac, bc.transpose(-1, -2)) * tri, cc)
        kv = torch.matmul(bc.transpose(-1, -2), cc).reshape(B, H, n, -1)
        before = torch.matmul(earlier, kv).reshape(B, H, n, D, cc.shape[-1])
        return (intra + torch.matmul(ac, before)).reshape(B, H, T, -1)
    return sums(rq, rk, v) / sums(fq, fk, torch.ones(B, H, T, 1))


def vmf_table(d, kappa, delta):
    """The post's inverse-CDF table of w (ALGORITHMS.md 5.2): grid -1 + (k+1) delta < 1, its CDF built
    in float64 and kept in float32, as kexue keeps it (half the bytes every search step reads)."""
    n = int(math.floor(2 / delta - 1e-9))
    x = -1 + torch.arange(1, n + 1, dtype=torch.float64) * delta
    y = kappa * x + (d - 3) / 2 * torch.log((1 - x) * (1 + x))
    c = torch.cumsum(torch.exp(y - y.max()), 0)
    return (c / c[-1]).float()


def vmf_icdf(cdf, delta, n):
    """np.interp(u, cdf, grid) for n float32 uniforms: searchsorted, then the line between the grid
    points, which are computed (-1 + (k+1) delta), not read from a table, as kexue's lookup does."""
    u = torch.rand(n)
    k = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.numel() - 1)
    c0, c1 = cdf[k - 1], cdf[k]
    t = (u - c0) / (c1 - c0)
    return (-1 + (k.double() + t.double()) * delta).float()


def vmf_wood(d, kappa, n):
    """Wood (1994), vectorised as PyTorch implementations do: Beta proposals for the rejected draws until none is left."""
    m = d - 1
    b = m / (math.sqrt(4 * kappa * kappa + m * m) + 2 * kappa)
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + m * math.log(1 - x0 * x0)
    beta = torch.distributions.Beta(torch.tensor(m / 2, dtype=torch.float64), torch.tensor(m / 2, dtype=torch.float64))
    w = torch.empty(n, dtype=torch.float64)
    todo = torch.arange(n)
    while todo.numel():
        z = beta.sample((todo.numel(),))
        cand = (1 - (1 + b) * z) / (1 - (1 - b) * z)
        ok = kappa * cand + m * torch.log(1 - x0 * cand) - c >= torch.log(torch.rand(todo.numel(), dtype=torch.float64))
        w[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return w.float()


def vmf_z(mu, w):
    """z = w mu + sqrt(1 - w^2) nu, nu = the normalised part of N(0, I) noise orthogonal to mu."""
    eps = torch.randn_like(mu)
    t = eps - (eps * mu).sum(-1, keepdim=True) * mu
    nu = t / t.norm(dim=-1, keepdim=True)
    w = w[:, None]
    return w * mu + torch.sqrt(1 - w * w) * nu


def checked(run, difference):
    """The case's iteration, carrying PyTorch's output against kexue's (max |difference|) for setup's reply."""
    if not difference <= AGREEMENT_TOLERANCE:
        raise ValueError(f'PyTorch and kexue disagree: max |difference| {difference:.3g} > {AGREEMENT_TOLERANCE}')
    run.max_abs_diff = difference
    return run


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
    if name == 'sentence-encode-10k':
        model = inference_bert(args['config'], args['weights'])
        ids, pad, batch = args['ids'], int(args['pad']), int(args['batch'])
        expected = read_safetensors(args['expected'])['vectors']
        difference = (sentence_vectors(model, ids, pad, batch) - expected).abs().max().item()
        return checked(lambda: sentence_vectors(model, ids, pad, batch), difference)
    if name.startswith('whitening-fit-'):
        data = read_safetensors(args['data'])
        x, beta, gamma, k = data['x'], float(args['beta']), float(args['gamma']), int(args['k'])
        kernel, bias = whitening_fit(x, beta, gamma, k)
        sign = torch.sign((kernel * data['kernel']).sum(0))  # an eigenvector's sign is arbitrary
        difference = max((kernel * sign - data['kernel']).abs().max().item(), (bias * sign - data['bias']).abs().max().item())
        return checked(lambda: whitening_fit(x, beta, gamma, k), difference)
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
    if name.startswith('linear-attention-rope-') or name.startswith('causal-attention-'):
        B, H, D, chunk = 1, 4, 64, 64  # rope_cases.ts's LONG_ATTENTION
        T = int(name.rsplit('-', 1)[1])
        q, k, v = (randn(B, H, T, D).requires_grad_() for _ in range(3))
        go = randn(B, H, T, D)
        cos, sin = rope_tables(T, D)
        causal = torch.triu(torch.full((T, T), float('-inf')), 1)

        def step():
            for t in (q, k, v):
                t.grad = None
            if name.startswith('linear'):
                out = linear_attention_rope(q, k, v, cos, sin, chunk)
            else:
                s = torch.matmul(q, k.transpose(-1, -2)) * (1 / math.sqrt(D)) + causal
                out = torch.matmul(torch.softmax(s, -1), v)
            out.backward(go)
        return step
    if name in ('tiger-10m', 'adamw-10m'):
        p = randn(10_000_000).requires_grad_()
        p.grad = randn(10_000_000) * 1e-3
        opt = torch.optim.AdamW([p], lr=1e-3)
        return opt.step
    if name in ('bert-small-train-step', 'bert-small-train-step-compiled'):
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
    if name in ('roformer-gp-train-step', 'roformer-gp-train-step-compiled'):
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
    if name == 't5-small-train-step':
        c = T5
        model = T5Model(c).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, c['vocab'], (c['batch'], c['source']), generator=g)
        labels = torch.randint(0, c['vocab'], (c['batch'], c['target']), generator=g)
        dec_ids = torch.cat([torch.full((c['batch'], 1), c['start']), labels[:, :-1]], 1)  # teacher forcing

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(ids, dec_ids)
            F.cross_entropy(logits.reshape(-1, c['vocab']), labels.reshape(-1)).backward()
            opt.step()
        return step
    if name.startswith('t5-generate-'):
        c = T5
        model = T5Model(c).eval()
        batch, beams = int(args['batch']), int(args['beams'])
        ids = torch.randint(0, c['vocab'], (batch, c['source']), generator=torch.Generator().manual_seed(2))
        mask = t5_additive_mask(torch.ones(batch, c['source'], dtype=torch.bool))

        def gen():
            with torch.no_grad():
                if args['mode'] == 'greedy':
                    t5_greedy(model, ids, mask, c['new_tokens'])
                else:
                    t5_beam(model, ids, mask, beams, c['new_tokens'])
        return gen
    if name.startswith('vmf-'):
        d, kappa, n = int(args['d']), float(args['kappa']), int(args['n'])
        if args['method'] == 'icdf':
            delta = float(args['delta'])
            cdf = vmf_table(d, kappa, delta)
            draw_w = lambda: vmf_icdf(cdf, delta, n)
        else:
            draw_w = lambda: vmf_wood(d, kappa, n)
        if name.startswith('vmf-z-'):
            g = torch.Generator().manual_seed(7)
            mu = torch.randn(n, d, generator=g)
            mu = mu / mu.norm(dim=-1, keepdim=True)
            return lambda: vmf_z(mu, draw_w())
        return draw_w
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
                if hasattr(fn, 'max_abs_diff'):
                    out['max_abs_diff'] = fn.max_abs_diff
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
