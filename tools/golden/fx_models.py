"""Model parity fixtures (the llm.c test): BERT (masked LM + pooler), RoFormer + Efficient
GlobalPointer, and a GlobalPointer head, written here in PyTorch with Hugging Face's state-dict
names (the encoder of torch_bert.py; transformers is not needed), small sizes and fixed weights.

Each fixture (packages/models/test/fixtures/<name>.safetensors) holds the weights under their HF
names, the inputs ("input.*"), the outputs ("out.*"), the loss, the gradient of the loss with
respect to every parameter ("grad.<name>") and, in the metadata, the config and the losses of ten
torch.optim.AdamW steps. Everything runs in float32 in eval mode (no dropout).

Conventions, as kexue's: GELU exact (erf); LayerNorm eps 1e-12; attention masks hide padded keys
(-inf by select); RoPE rotates interleaved pairs at positions 0..n-1 with theta_i = 10000^(-2i/d);
GlobalPointer masks (padding, lower triangle) by -inf select (ALGORITHMS.md §2.2-2.3).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import common
from torch_bert import Encoderish, init_weights, rope

OUT = os.path.join(common.ROOT, "packages", "models", "test", "fixtures")
NEG = float("-inf")

CFG = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
           max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu")
B, T = 2, 12
LENGTHS = [12, 8]


class MLMHead(nn.Module):
    """cls.predictions: transform (dense, gelu, LayerNorm), decoder tied to the word embeddings, bias."""

    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(h, h)
        self.transform.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))

    def forward(self, x, table):
        x = self.transform.LayerNorm(F.gelu(self.transform.dense(x)))
        return x @ table.t() + self.bias


class BertMLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = Encoderish(c, "bert")
        self.cls = nn.Module()
        self.cls.predictions = MLMHead(c)

    def forward(self, ids, types, mask, labels):
        outs, pooled = self.bert(ids, types, mask)
        logits = self.cls.predictions(outs[-1], self.bert.embeddings.word_embeddings.weight)
        # the pooler joins the loss (0.1 * mean(pooled^2)) so that its gradients are checked too
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        loss = loss + 0.1 * (pooled ** 2).mean()
        return loss, {"logits": logits, "pooled": pooled, "hidden0": outs[0], "hidden": outs[-1]}


def tril_pad_mask(mask):
    n = mask.shape[1]
    keep = mask[:, None, :, None] & mask[:, None, None, :]
    return keep & torch.triu(torch.ones(n, n, dtype=torch.bool))


class EfficientGlobalPointer(nn.Module):
    def __init__(self, h, heads, d):
        super().__init__()
        self.heads, self.d = heads, d
        self.p_dense = nn.Linear(h, 2 * d)
        self.q_dense = nn.Linear(2 * d, 2 * heads)

    def forward(self, x, mask):
        p = self.p_dense(x)
        q, k = rope(p[..., ::2]), rope(p[..., 1::2])
        shared = torch.einsum("bmd,bnd->bmn", q, k) / math.sqrt(self.d)
        bias = self.q_dense(p).transpose(1, 2) / 2
        s = shared[:, None] + bias[:, ::2, None] + bias[:, 1::2, :, None]
        return torch.where(tril_pad_mask(mask), s, torch.full_like(s, NEG))


class GlobalPointer(nn.Module):
    def __init__(self, h, heads, d):
        super().__init__()
        self.heads, self.d = heads, d
        self.dense = nn.Linear(h, heads * 2 * d)

    def forward(self, x, mask):
        Bn, n, _ = x.shape
        y = self.dense(x).view(Bn, n, self.heads, 2 * self.d).transpose(1, 2)  # [B, heads, n, 2d]
        q, k = rope(y[..., : self.d]), rope(y[..., self.d:])
        s = q @ k.transpose(-1, -2) / math.sqrt(self.d)
        return torch.where(tril_pad_mask(mask), s, torch.full_like(s, NEG))


def mlce(scores, labels):
    """Dense multilabel CE per row of [B*heads, n*n], mean over rows (ALGORITHMS.md §2.4)."""
    s = scores.reshape(-1, scores.shape[-1] * scores.shape[-2])
    y = labels.reshape(s.shape)
    finite = torch.isfinite(s)
    neg = torch.where(finite & (y < 0.5), s, torch.full_like(s, NEG))
    pos = torch.where(finite & (y > 0.5), -s, torch.full_like(s, NEG))
    z = torch.zeros_like(s[:, :1])
    return (torch.logsumexp(torch.cat([neg, z], 1), 1) + torch.logsumexp(torch.cat([pos, z], 1), 1)).mean()


class RoFormerEGP(nn.Module):
    def __init__(self, c, heads, d):
        super().__init__()
        self.roformer = Encoderish(c, "roformer")
        self.global_pointer = EfficientGlobalPointer(c["hidden_size"], heads, d)

    def forward(self, ids, types, mask, labels):
        outs, _ = self.roformer(ids, types, mask)
        scores = self.global_pointer(outs[-1], mask)
        return mlce(scores, labels), {"scores": scores, "hidden": outs[-1]}


class GPOnly(nn.Module):
    def __init__(self, h, heads, d):
        super().__init__()
        self.global_pointer = GlobalPointer(h, heads, d)

    def forward(self, x, mask, labels):
        scores = self.global_pointer(x, mask)
        return mlce(scores, labels), {"scores": scores}




def save(name, model, inputs, args, meta):
    common.save_model_fixture(OUT, name, model, inputs, args, meta)


def batch(seed):
    g = common.generator(seed)
    ids = torch.randint(1, CFG["vocab_size"], (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, L in enumerate(LENGTHS):
        mask[b, :L] = True
    ids = ids.masked_fill(~mask, 0)
    types = torch.zeros(B, T, dtype=torch.long)
    types[0, 7:] = 1
    return g, ids, types, mask


def span_labels(g, heads, n_spans):
    labels = torch.zeros(B, heads, T, T)
    spans = []
    for b, L in enumerate(LENGTHS):
        for _ in range(n_spans):
            h = int(torch.randint(0, heads, (1,), generator=g))
            i = int(torch.randint(1, L - 1, (1,), generator=g))
            j = min(L - 2, i + int(torch.randint(0, 3, (1,), generator=g)))
            labels[b, h, i, j] = 1.0
            spans.append([b, h, i, j])
    return labels, spans


torch.manual_seed(0)

# BERT masked LM (+ pooler)
g, ids, types, mask = batch(1)
labels = torch.full((B, T), -100, dtype=torch.long)
for b, pos in enumerate([[1, 4, 9], [2, 5]]):
    for p in pos:
        labels[b, p] = ids[b, p]
bert = BertMLM(CFG)
init_weights(bert, 2)
save("bert_mlm", bert, {"input_ids": ids.int(), "token_type_ids": types.int(), "attention_mask": mask.to(torch.uint8),
                        "labels": labels.int()}, (ids, types, mask, labels), {"name": "bert_mlm", "config": CFG})

# RoFormer + Efficient GlobalPointer
HEADS, D = 3, 8
g, ids, types, mask = batch(3)
labels, spans = span_labels(g, HEADS, 3)
egp = RoFormerEGP(CFG, HEADS, D)
init_weights(egp, 4)
save("roformer_egp", egp, {"input_ids": ids.int(), "token_type_ids": types.int(), "attention_mask": mask.to(torch.uint8),
                           "labels": labels}, (ids, types, mask, labels),
     {"name": "roformer_egp", "config": CFG, "heads": HEADS, "headSize": D, "spans": spans})

# GlobalPointer (original) on fixed hidden states
g = common.generator(5)
x = common.randn(g, B, T, CFG["hidden_size"])
_, _, _, mask = batch(5)
labels, spans = span_labels(g, HEADS, 2)
gp = GPOnly(CFG["hidden_size"], HEADS, D)
init_weights(gp, 6)
save("gp_head", gp, {"hidden": x, "attention_mask": mask.to(torch.uint8), "labels": labels}, (x, mask, labels),
     {"name": "gp_head", "heads": HEADS, "headSize": D, "spans": spans})
