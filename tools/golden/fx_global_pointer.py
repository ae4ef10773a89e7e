"""Fixture for the GlobalPointer ops (ALGORITHMS.md §2.2–2.5), computed in float64 by PyTorch and
stored as float32, with PyTorch's gradients for a fixed random upstream gradient:

- global_pointer: s = scale * q k^T + start[..., :, None] + end[..., None, :], -inf where token i
  or j is padding or (tril) j < i; q, k [B, G, n, d] with G = H, or G = 1 shared by H heads.
  Gradients of sum(where(keep, s, 0) * dy).
- multilabel_ce (dense, soft labels allowed) and sparse_multilabel_ce (positive indices, with and
  without mask_zero; one row where the 1e-7 clip is active): per-row losses and the gradients of
  sum(loss * dloss).
"""
import math

import torch

from common import generator, randn, save_fixture

g = generator(11)
tensors, cases = {}, []
NEG = float("-inf")


def gp_case(name, B, G, H, n, d, with_terms, mask_lens, tril, scale=None):
    q = randn(g, B, G, n, d)
    k = randn(g, B, G, n, d)
    start = randn(g, B, H, n) if with_terms else None
    end = randn(g, B, H, n) if with_terms else None
    mask = None
    if mask_lens is not None:
        mask = torch.zeros(B, n, dtype=torch.uint8)
        for b, L in enumerate(mask_lens):
            mask[b, :L] = 1
    dy = randn(g, B, H, n, n)
    sc = scale if scale is not None else 1.0 / math.sqrt(d)
    leaves = [t.double().requires_grad_(True) if t is not None else None for t in (q, k, start, end)]
    s = torch.einsum("bgid,bgjd->bgij", leaves[0], leaves[1]) * sc
    s = s.expand(B, H, n, n)
    if with_terms:
        s = s + leaves[2][..., :, None] + leaves[3][..., None, :]
    keep = torch.ones(B, 1, n, n, dtype=torch.bool)
    if mask is not None:
        mb = mask.bool()
        keep = keep & mb[:, None, :, None] & mb[:, None, None, :]
    if tril:
        keep = keep & torch.triu(torch.ones(n, n, dtype=torch.bool))
    out = torch.where(keep, s, torch.full_like(s, NEG))
    (torch.where(keep, s, torch.zeros_like(s)) * dy.double()).sum().backward()
    p = f"{name}."
    tensors[p + "q"], tensors[p + "k"], tensors[p + "dy"] = q, k, dy
    tensors[p + "out"] = out.float()
    tensors[p + "dq"], tensors[p + "dk"] = leaves[0].grad.float(), leaves[1].grad.float()
    if mask is not None:
        tensors[p + "mask"] = mask
    if with_terms:
        tensors[p + "start"], tensors[p + "end"] = start, end
        tensors[p + "dstart"], tensors[p + "dend"] = leaves[2].grad.float(), leaves[3].grad.float()
    cases.append({"name": name, "op": "global_pointer", "mask": mask is not None, "terms": with_terms, "tril": tril,
                  "scale": scale})


def lse0(x):
    """logsumexp over the last axis with an extra 0 element; -inf entries drop out."""
    z = torch.zeros_like(x[..., :1])
    return torch.logsumexp(torch.cat([x, z], dim=-1), dim=-1)


def dense_case(name, scores, labels):
    s = scores.double().requires_grad_(True)
    t = labels.double()
    finite = torch.isfinite(s)
    # where, not multiply: -inf scores and ln(0) must never meet a 0 factor.
    neg = torch.where(finite & (t < 1), s + torch.log1p(-t.clamp(max=1 - 1e-300)), torch.full_like(s, NEG))
    pos = torch.where(finite & (t > 0), -s + torch.log(t.clamp(min=1e-300)), torch.full_like(s, NEG))
    loss = lse0(neg) + lse0(pos)
    dloss = randn(g, scores.shape[0])
    (loss * dloss.double()).sum().backward()
    p = f"{name}."
    tensors[p + "scores"], tensors[p + "labels"], tensors[p + "dloss"] = scores, labels, dloss
    tensors[p + "loss"], tensors[p + "dscores"] = loss.float(), s.grad.float()
    cases.append({"name": name, "op": "multilabel_ce"})


def sparse_case(name, scores, idx, mask_zero, eps=1e-7):
    s = scores.double().requires_grad_(True)
    R, C = s.shape
    ix = idx.long()
    valid = torch.ones_like(ix, dtype=torch.bool) if not mask_zero else ix != 0
    sp = torch.gather(s, 1, ix)
    pos = lse0(torch.where(valid, -sp, torch.full_like(sp, NEG)))
    alls = s if not mask_zero else torch.cat([torch.full_like(s[:, :1], NEG), s[:, 1:]], dim=1)
    a = lse0(alls)
    b = torch.logsumexp(torch.where(valid, sp, torch.full_like(sp, NEG)), dim=-1)
    neg = a + torch.log(torch.clip(1 - torch.exp(b - a), eps, 1))
    loss = pos + neg
    dloss = randn(g, R)
    (loss * dloss.double()).sum().backward()
    p = f"{name}."
    tensors[p + "scores"], tensors[p + "indices"], tensors[p + "dloss"] = scores, idx, dloss
    tensors[p + "loss"], tensors[p + "dscores"] = loss.float(), s.grad.float()
    cases.append({"name": name, "op": "sparse_multilabel_ce", "maskZero": mask_zero})


gp_case("gp", B=2, G=3, H=3, n=7, d=8, with_terms=False, mask_lens=[7, 4], tril=True)
gp_case("gp_notril", B=1, G=2, H=2, n=5, d=4, with_terms=False, mask_lens=None, tril=False, scale=0.3)
gp_case("egp", B=2, G=1, H=4, n=6, d=8, with_terms=True, mask_lens=[5, 6], tril=True)
gp_case("gp_terms", B=1, G=2, H=2, n=9, d=6, with_terms=True, mask_lens=[6], tril=True)

scores = randn(g, 4, 10, scale=3.0)
scores[0, 3] = NEG
scores[2, :] = NEG
labels = (torch.rand(4, 10, generator=g) > 0.7).float()
labels[0, 3] = 1.0  # a positive on a masked entry is left out
labels[3] = torch.rand(10, generator=g)  # soft labels
dense_case("mlce", scores, labels)

scores = randn(g, 4, 12, scale=3.0)
scores[1, 5] = NEG
idx = torch.tensor([[3, 7, 0], [2, 0, 0], [0, 0, 0], [1, 4, 11]], dtype=torch.int32)
sparse_case("smlce_mz", scores, idx, mask_zero=True)
scores = randn(g, 3, 8, scale=3.0)
scores[2] = torch.full((8,), NEG)
scores[2, 6] = 30.0  # the positive dominates: the clip is active
idx = torch.tensor([[0, 5], [1, 2], [6, 6]], dtype=torch.int32)
sparse_case("smlce", scores, idx, mask_zero=False)

save_fixture("global_pointer", tensors, cases)
