"""Sentence-vector fixtures (packages/models/test/sentence.test.ts, ALGORITHMS.md §3), written
into packages/models/test/fixtures/:

- sentence_hf/: a small Hugging Face BERT checkpoint made here in PyTorch (torch_bert.py's
  encoder): config.json, vocab.txt (the special tokens and the 150 commonest characters of
  LCQMC's valid split) and pytorch_model.bin laid out as bert-base-chinese's is: the encoder
  under "bert.", LayerNorm parameters under their TensorFlow names gamma / beta, and the
  pre-training heads (cls.predictions.*, cls.seq_relationship.*) beside it.
- sentence.safetensors, metadata "cases":
  - "pool": texts of CJK characters, their ids (one character a token, [UNK] outside the vocab)
    and, for the whole padded batch, the four poolings of §3.3 (cls, pooler without tanh,
    last-avg, first-last-avg: masked means over [CLS] ... [SEP]).
  - "spearman": score and label vectors with ties, and Spearman's rho from average ranks and the
    Pearson correlation of the ranks, in float64 (no scipy: the rank rule is written below).
  - "whiten": rows x and, for (beta, gamma, k), the kernel U·Λ^(−γ/2)[:, :k] and bias −β·μ·kernel of
    Σ_β = (x − βμ)ᵀ(x − βμ)/N from torch.linalg.eigh in float64 (eigenvalues descending, each
    eigenvector's entry of largest magnitude positive, kexue's sign rule), and the transformed
    rows; "rank" cases hold rank-deficient rows and the numerical rank of each Σ_β.
"""
import json
import os
import re
from collections import Counter

import torch

import common
from torch_bert import Encoderish, init_weights

OUT = os.path.join(common.ROOT, "packages", "models", "test", "fixtures")
HF_DIR = os.path.join(OUT, "sentence_hf")
DATA = os.path.join(os.path.dirname(common.ROOT), "shared", "data", "sts", "LCQMC", "LCQMC.valid.data")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CJK = re.compile(r"[\u4e00-\u9fff]")

tensors, cases = {}, []

# ---- the checkpoint ----
lines = [l.split("\t") for l in open(DATA, encoding="utf-8").read().splitlines() if l.strip()]
counts = Counter(ch for a, b, _ in lines for ch in a + b if CJK.match(ch))
chars = [ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:150]]
vocab = SPECIALS + chars
ids_of = {t: i for i, t in enumerate(vocab)}
CFG = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
           max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu")

bert = Encoderish(CFG, "bert")
init_weights(bert, 31)
bert.eval()
g = common.generator(32)
state = {}
for k, v in bert.state_dict().items():
    # bert-base-chinese's file keeps TensorFlow's LayerNorm names
    state["bert." + re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma", re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k))] = v.clone()
h, V = CFG["hidden_size"], CFG["vocab_size"]
for name, shape in [("cls.predictions.bias", [V]), ("cls.predictions.transform.dense.weight", [h, h]),
                    ("cls.predictions.transform.dense.bias", [h]), ("cls.predictions.transform.LayerNorm.gamma", [h]),
                    ("cls.predictions.transform.LayerNorm.beta", [h]), ("cls.seq_relationship.weight", [2, h]),
                    ("cls.seq_relationship.bias", [2])]:
    state[name] = common.randn(g, *shape, scale=0.05)
state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
os.makedirs(HF_DIR, exist_ok=True)
torch.save(state, os.path.join(HF_DIR, "pytorch_model.bin"))
config = dict(architectures=["BertForMaskedLM"], attention_probs_dropout_prob=0.1, directionality="bidi",
              hidden_dropout_prob=0.1, initializer_range=0.02, model_type="bert", pad_token_id=0, **CFG)
with open(os.path.join(HF_DIR, "config.json"), "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write("\n")
with open(os.path.join(HF_DIR, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in vocab))
print(f"wrote {HF_DIR} ({len(vocab)} tokens)")

# ---- pooling on a padded batch ----
texts = []
for a, b, _ in lines[:14]:
    t = "".join(CJK.findall(a))
    if t and len(texts) < 7:
        texts.append(t[: 3 + 3 * len(texts)])  # lengths 3, 6, 9, ... (or the sentence's own, when shorter)
texts[0] = texts[0][:1]  # one character: [CLS] x [SEP]
ids_list = [[2] + [ids_of.get(ch, 1) for ch in t] + [3] for t in texts]
T = max(len(i) for i in ids_list)
ids = torch.zeros(len(texts), T, dtype=torch.long)
mask = torch.zeros(len(texts), T, dtype=torch.bool)
for r, i in enumerate(ids_list):
    ids[r, : len(i)] = torch.tensor(i)
    mask[r, : len(i)] = True
with torch.no_grad():
    outs, _ = bert(ids, torch.zeros_like(ids), mask)
    m = mask[:, :, None].float()
    mean = lambda x: (x * m).sum(1) / m.sum(1)  # noqa: E731
    pooled = {"cls": outs[-1][:, 0], "pooler": bert.pooler.dense(outs[-1][:, 0]), "last-avg": mean(outs[-1]),
              "first-last-avg": (mean(outs[0]) + mean(outs[-1])) / 2}
for k, v in pooled.items():
    tensors[f"pool.{k}"] = v.float().contiguous()
cases.append({"name": "pool", "texts": texts, "ids": ids_list})


# ---- Spearman with ties ----
def average_ranks(x):
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return torch.tensor(ranks, dtype=torch.float64)


def spearman(a, b):
    ra, rb = average_ranks(a.tolist()), average_ranks(b.tolist())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / torch.sqrt((ra * ra).sum() * (rb * rb).sum()))


g = common.generator(33)
for name, n, labels in [("binary", 60, 2), ("graded", 45, 6), ("heavy_ties", 30, 2)]:
    y = torch.randint(0, labels, (n,), generator=g).float()
    x = (y * 0.3 + common.randn(g, n)).float()
    if name != "binary":
        x = torch.round(x * 4) / 4  # many tied scores
    tensors[f"spearman.{name}.x"], tensors[f"spearman.{name}.y"] = x, y
    cases.append({"name": f"spearman.{name}", "rho": spearman(x.double(), y.double())})


# ---- whitening ----
def reference(x, beta, gamma, k):
    x64 = x.double()
    mu = x64.mean(0)
    c = x64 - beta * mu
    sigma = c.T @ c / x64.shape[0]
    lam, u = torch.linalg.eigh(sigma)
    lam, u = lam.flip(0), u.flip(1)
    pick = u.abs().argmax(0)
    u = u * torch.sign(u[pick, torch.arange(u.shape[1])])[None]
    kernel = (u * lam.clamp_min(0).pow(-gamma / 2)[None])[:, :k]
    bias = -beta * mu @ kernel
    return kernel, bias, x64 @ kernel + bias, lam


def numerical_rank(lam, d):
    """Eigenvalues above d · float32 epsilon · the largest (kexue's documented rule)."""
    return int((lam > lam.max() * d * torch.finfo(torch.float32).eps).sum())


g = common.generator(34)
N, D = 80, 12
q, _ = torch.linalg.qr(common.randn(g, D, D).double())
scales = torch.linspace(3.0, 0.4, D, dtype=torch.float64)
x = ((common.randn(g, N, D).double() * scales) @ q.T + 0.7).float()
tensors["whiten.x"] = x
for i, (beta, gamma, k) in enumerate([(1, 1, D), (1, 1, 6), (0, 0, D), (0, 0, 5), (0.5, 0.5, 8), (1, 0, 4)]):
    kernel, bias, y, _ = reference(x, beta, gamma, k)
    tensors[f"whiten.{i}.kernel"], tensors[f"whiten.{i}.bias"], tensors[f"whiten.{i}.y"] = kernel.float(), bias.float(), y.float()
    cases.append({"name": f"whiten.{i}", "beta": beta, "gamma": gamma, "k": k})

# rank-deficient rows: 30 rows in a 5-dimensional subspace plus an offset (Σ_1 has rank 5, Σ_0 rank 6)
a = common.randn(g, 30, 5).double() * torch.tensor([2.0, 1.5, 1.2, 1.0, 0.8], dtype=torch.float64)
xr = (a @ common.randn(g, 5, D).double() + 0.5).float()
tensors["rank.x"] = xr
for i, beta in enumerate([1, 0]):
    _, _, _, lam = reference(xr, beta, 1, D)
    rank = numerical_rank(lam, D)
    kernel, bias, y, _ = reference(xr, beta, 1, rank)
    tensors[f"rank.{i}.kernel"], tensors[f"rank.{i}.bias"], tensors[f"rank.{i}.y"] = kernel.float(), bias.float(), y.float()
    cases.append({"name": f"rank.{i}", "beta": beta, "gamma": 1, "rank": rank})

path = os.path.join(OUT, "sentence.safetensors")
size = common.write_safetensors(path, tensors, {"cases": json.dumps(cases, ensure_ascii=False)})
print(f"wrote {path} ({size} bytes, {len(cases)} cases)")
