"""A small BERT / RoFormer encoder in PyTorch with Hugging Face's state-dict names (transformers is
not needed), shared by the fixture scripts: embeddings, post-LN layers (GELU exact, LayerNorm eps
from the config), attention masks hiding padded keys (-inf by select), RoPE on interleaved pairs
for RoFormer, and BERT's pooler. Everything runs in float32; there is no dropout.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import common

NEG = float("-inf")

def rope(x):
    """x [..., n, d]: interleaved pairs (2i, 2i+1) turned by m * theta_i at positions m = 0..n-1."""
    n, d = x.shape[-2], x.shape[-1]
    theta = torch.tensor([10000.0 ** (-2.0 * i / d) for i in range(d // 2)], dtype=torch.float64).float()
    ang = torch.arange(n, dtype=torch.float32)[:, None] * theta[None, :]
    cos = torch.cos(ang).repeat_interleave(2, -1)
    sin = torch.sin(ang).repeat_interleave(2, -1)
    x2 = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape(x.shape)
    return x * cos + x2 * sin


class SelfAttention(nn.Module):
    def __init__(self, h, heads, rotary):
        super().__init__()
        self.heads, self.rotary = heads, rotary
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x, mask):
        Bn, n, h = x.shape
        dh = h // self.heads
        split = lambda t: t.view(Bn, n, self.heads, dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if self.rotary:
            q, k = rope(q), rope(k)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        s = s.masked_fill(~mask[:, None, None, :], NEG)
        o = torch.softmax(s, -1) @ v
        return o.transpose(1, 2).reshape(Bn, n, h)


class DenseNorm(nn.Module):
    """HF's BertSelfOutput / BertOutput: dense, (dropout), LayerNorm(x + residual)."""

    def __init__(self, i, h, eps):
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(i, h), nn.LayerNorm(h, eps=eps)

    def forward(self, x, res):
        return self.LayerNorm(self.dense(x) + res)


class Attention(nn.Module):
    def __init__(self, c, rotary):
        super().__init__()
        # HF names: attention.self.*, attention.output.*
        setattr(self, "self", SelfAttention(c["hidden_size"], c["num_attention_heads"], rotary))
        self.output = DenseNorm(c["hidden_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, mask):
        return self.output(getattr(self, "self")(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c, rotary):
        super().__init__()
        self.attention = Attention(c, rotary)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c["intermediate_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c, rotary):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c, rotary) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, mask):
        outs = []
        for layer in self.layer:
            x = layer(x, mask)
            outs.append(x)
        return outs


class Embeddings(nn.Module):
    def __init__(self, c, absolute):
        super().__init__()
        h = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h)
        if absolute:
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
        self.absolute = absolute

    def forward(self, ids, types):
        x = self.word_embeddings(ids) + self.token_type_embeddings(types)
        if self.absolute:
            x = x + self.position_embeddings(torch.arange(ids.shape[1]))[None]
        return self.LayerNorm(x)


class Pooler(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.dense = nn.Linear(h, h)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Encoderish(nn.Module):
    """BertModel (absolute positions, pooler) or RoFormerModel (RoPE, no pooler)."""

    def __init__(self, c, kind):
        super().__init__()
        self.embeddings = Embeddings(c, absolute=kind == "bert")
        self.encoder = Encoder(c, rotary=kind == "roformer")
        if kind == "bert":
            self.pooler = Pooler(c["hidden_size"])

    def forward(self, ids, types, mask):
        outs = self.encoder(self.embeddings(ids, types), mask)
        pooled = self.pooler(outs[-1]) if hasattr(self, "pooler") else None
        return outs, pooled


def init_weights(model, seed):
    g = common.generator(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + common.randn(g, *p.shape, scale=0.1))
            else:
                p.copy_(common.randn(g, *p.shape, scale=0.08 if name.endswith("weight") else 0.02))
