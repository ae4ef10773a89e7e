"""Fixtures for embedding and rope: gathered rows and the table gradient of sum(y * w) (repeated
ids accumulate), and an interleaved-pair RoPE written in PyTorch exactly as ALGORITHMS.md §6
(θ_i = 10000^(−2i/D) rounded to float32, angle = position·θ_i in float32), with the gradient of
sum(y * w) with respect to x."""
import torch
import torch.nn.functional as F

from common import generator, randn, save_fixture

g = generator(11)
tensors, cases = {}, []

# --- embedding ---------------------------------------------------------------------------------


def add_embedding(name, v, d, ids_shape, dtype=torch.float32, repeat=False):
    table = randn(g, v, d).to(dtype)
    ids = torch.randint(0, v, ids_shape, generator=g, dtype=torch.int64)
    if repeat:  # force many repeats of a few ids
        ids = ids % 3
    w = randn(g, *ids_shape, d).to(dtype)
    t64 = table.double().requires_grad_()
    y = F.embedding(ids, t64)
    (y * w.double()).sum().backward()
    tensors[f"{name}.table"] = table
    tensors[f"{name}.ids"] = ids.to(torch.int32)
    tensors[f"{name}.w"] = w
    tensors[f"{name}.y"] = y.detach().float()
    tensors[f"{name}.dtable"] = t64.grad.float()
    cases.append({"name": name, "op": "embedding", "dtype": str(dtype).replace("torch.", "")})


add_embedding("emb_small", 11, 7, [3, 5])
add_embedding("emb_repeat", 5, 17, [4, 9], repeat=True)
add_embedding("emb_wide", 50, 1030, [2, 6])
add_embedding("emb_scalar_rows", 7, 1, [13])
add_embedding("emb_f16", 40, 64, [3, 8], dtype=torch.float16, repeat=True)
add_embedding("emb_bf16", 40, 64, [3, 8], dtype=torch.bfloat16)

# --- rope --------------------------------------------------------------------------------------


def rope_ref(x, pos):
    """x [..., T, D] float32; pos integer, broadcastable to x.shape[:-1]."""
    d = x.shape[-1]
    theta = (10000.0 ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)).float()
    ang = pos.float()[..., None] * theta  # float32 product, as the spec asks
    c, s = torch.cos(ang), torch.sin(ang)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1).flatten(-2)


def add_rope(name, shape, positions=None, dtype=torch.float32):
    t = shape[-2]
    x = randn(g, *shape).to(dtype)
    w = randn(g, *shape).to(dtype)
    pos = torch.arange(t) if positions is None else positions
    xr = x.float().requires_grad_()
    y = rope_ref(xr, pos)
    (y * w.float()).sum().backward()
    tensors[f"{name}.x"] = x
    tensors[f"{name}.w"] = w
    tensors[f"{name}.y"] = y.detach()
    tensors[f"{name}.dx"] = xr.grad
    if positions is not None:
        tensors[f"{name}.positions"] = positions.to(torch.int32)
    cases.append({"name": name, "op": "rope", "shape": list(shape), "positions": positions is not None,
                  "dtype": str(dtype).replace("torch.", "")})


add_rope("rope_default", [2, 3, 5, 8])
add_rope("rope_d2", [4, 2])
add_rope("rope_d768", [6, 768])
add_rope("rope_custom", [7, 64], torch.tensor([0, 3, 3, 100, 1000, 4095, -2]))
add_rope("rope_large_pos", [4, 128], torch.tensor([8191, 30000, 65535, 123456]))
add_rope("rope_bcast", [2, 3, 5, 16], torch.randint(0, 512, (2, 1, 5), generator=g))
add_rope("rope_full_pos", [2, 4, 6], torch.randint(0, 64, (2, 4), generator=g))
add_rope("rope_f16", [3, 10, 64], dtype=torch.float16)
add_rope("rope_bf16", [3, 10, 64], dtype=torch.bfloat16)

save_fixture("embedding_rope", tensors, cases)
