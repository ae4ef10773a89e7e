"""Fixture for attention: out = softmax(q k^T * scale + bias, masked to -inf) @ v, computed
explicitly in float64 (PyTorch 1.13 has no CPU SDPA with masks to trust) and cast to float32, with
PyTorch's float64 gradients of sum(out * dout) for a fixed random dout.

Conventions (as kexue's): mask is uint8, 1 = attend; causal hides keys j > i + (Tk - Tq) (aligned to
the bottom-right corner, flash-attention's convention); a fully masked row gives zeros and zero
gradients. Half cases store float32 inputs already rounded to the half type, and the reference is
computed from those rounded values.
"""
import math

import torch

from common import generator, randn, save_fixture

g = generator(7)


def reference(q, k, v, mask, bias, causal, scale):
    s = (q @ k.transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    Tq, Tk = q.shape[-2], k.shape[-2]
    keep = torch.ones(s.shape, dtype=torch.bool)
    if mask is not None:
        keep = keep & mask.bool()
    if causal:
        i = torch.arange(Tq)[:, None]
        j = torch.arange(Tk)[None, :]
        keep = keep & (j <= i + (Tk - Tq))
    s = s.masked_fill(~keep, float("-inf"))
    # A fully masked row: softmax of all -inf is NaN; take zeros (and keep NaN out of the backward).
    alive = keep.any(dim=-1, keepdim=True)
    s = torch.where(alive, s, torch.zeros_like(s))
    p = torch.softmax(s, dim=-1) * alive
    return p @ v


tensors, cases = {}, []


def case(name, B, H, Tq, Tk, D, Dv=None, mask_shape=None, mask_fill=None, bias_shape=None, causal=False,
         scale=None, grad=True, half=None):
    Dv = Dv or D
    q = randn(g, B, H, Tq, D)
    k = randn(g, B, H, Tk, D)
    v = randn(g, B, H, Tk, Dv)
    mask = None
    if mask_shape is not None:
        mask = (torch.rand(*mask_shape, generator=g) > 0.3).to(torch.uint8)
        if mask_fill is not None:
            mask_fill(mask)
    bias = randn(g, *bias_shape) if bias_shape is not None else None
    dout = randn(g, B, H, Tq, Dv)
    if half is not None:
        rnd = lambda t: t.to(half).float() if t is not None else None  # noqa: E731
        q, k, v, bias, dout = rnd(q), rnd(k), rnd(v), rnd(bias), rnd(dout)
    sc = scale if scale is not None else 1.0 / math.sqrt(D)
    leaves = [t.double().requires_grad_(True) if t is not None else None for t in (q, k, v, bias)]
    out = reference(leaves[0], leaves[1], leaves[2], mask, leaves[3], causal, sc)
    tensors[f"{name}.q"], tensors[f"{name}.k"], tensors[f"{name}.v"] = q, k, v
    tensors[f"{name}.out"] = out.detach().float()
    if mask is not None:
        tensors[f"{name}.mask"] = mask
    if bias is not None:
        tensors[f"{name}.bias"] = bias
    if grad:
        (out * dout.double()).sum().backward()
        tensors[f"{name}.dout"] = dout
        for role, leaf in zip(("dq", "dk", "dv", "dbias"), leaves):
            if leaf is not None:
                tensors[f"{name}.{role}"] = leaf.grad.float()
    entry = {"name": name, "causal": causal, "grad": grad, "mask": mask is not None, "bias": bias is not None}
    if scale is not None:
        entry["scale"] = scale
    if half is not None:
        entry["dtype"] = {torch.float16: "float16", torch.bfloat16: "bfloat16"}[half]
    cases.append(entry)


def kill_rows(mask):
    mask[0, 0, 3, :] = 0  # a fully masked row
    mask[-1, -1, 0, :] = 0
    mask[0, -1, 5, :] = 0
    mask[0, -1, 5, 2] = 1  # a row that sees one key


def pad_tail(mask):
    mask.fill_(1)
    mask[0, ..., 12:] = 0  # padding: the first sequence has 12 real tokens
    mask[1, ..., 15:] = 0


case("t1", 1, 1, 1, 1, 4)
case("basic", 2, 3, 17, 17, 8)
case("cross_dv", 2, 2, 5, 17, 16, Dv=8)
case("d64_t130", 1, 2, 130, 130, 64)
case("long_keys", 1, 1, 3, 1000, 8, grad=False)
case("pad_mask", 2, 2, 17, 17, 8, mask_shape=(2, 1, 1, 17), mask_fill=pad_tail)
case("full_mask", 2, 3, 9, 13, 8, mask_shape=(2, 3, 9, 13), mask_fill=kill_rows)
case("causal", 2, 2, 17, 17, 8, causal=True)
case("causal_tq_lt_tk", 1, 2, 5, 9, 8, causal=True)
case("causal_tq_gt_tk", 1, 2, 9, 5, 8, causal=True)
case("causal_t130", 1, 1, 130, 130, 16, causal=True, mask_shape=(1, 1, 1, 130))
case("bias_t5", 2, 3, 17, 11, 8, bias_shape=(1, 3, 17, 11))
case("bias_pad", 2, 3, 7, 11, 8, bias_shape=(2, 1, 1, 11))
case("bias_full", 2, 2, 7, 11, 8, bias_shape=(2, 2, 7, 11), mask_shape=(2, 2, 7, 11), causal=True)
case("bias_2d", 2, 2, 70, 66, 8, bias_shape=(70, 66), mask_shape=(2, 1, 70, 1))
case("scale", 2, 2, 6, 6, 8, scale=0.3)
case("half_f16", 2, 2, 33, 33, 16, mask_shape=(2, 1, 1, 33), bias_shape=(1, 2, 33, 33), half=torch.float16)
case("half_bf16", 2, 2, 33, 33, 16, mask_shape=(2, 1, 1, 33), causal=True, half=torch.bfloat16)

save_fixture("attention", tensors, cases)
