"""Fixtures for rope's options: the GPT-NeoX / LLaMA "rotate-half" formula as their code writes it
(y = x·cos + rotate_half(x)·sin with cos, sin repeated over both halves), the bert4keras interleaved
formula, partial rotary dims (the rest passed through), other bases, a position offset, linear
position interpolation and NTK-aware base scaling; with the gradient of sum(y * w) in x.
θ_i = base^(−2i/r) is rounded to float32 and the angle (m/s)·θ_i formed in float32, as the kernels
do; cos, sin and the products are then taken in float64 so the reference itself adds no error."""
import torch

from common import generator, randn, save_fixture

g = generator(21)
tensors, cases = {}, []


def angles(pos, r, base, factor):
    theta = (base ** (-2.0 * torch.arange(r // 2, dtype=torch.float64) / r)).float()
    return ((pos.float() / factor)[..., None] * theta).double()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rope_ref(x, pos, layout, r, base, factor):
    """x [..., T, D] float64; pos integer, broadcastable to x.shape[:-1]."""
    ang = angles(pos, r, base, factor)
    c, s = torch.cos(ang), torch.sin(ang)
    xr, xp = x[..., :r], x[..., r:]
    if layout == "rotate-half":
        y = xr * torch.cat([c, c], dim=-1) + rotate_half(xr) * torch.cat([s, s], dim=-1)
    else:
        x0, x1 = xr[..., 0::2], xr[..., 1::2]
        y = torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1).flatten(-2)
    return torch.cat([y, xp], dim=-1)


def add(name, shape, layout, rotary=None, base=10000.0, offset=0, positions=None, scaling=None,
        dtype=torch.float32):
    t, d = shape[-2], shape[-1]
    r = rotary or d
    x = randn(g, *shape).to(dtype)
    w = randn(g, *shape).to(dtype)
    pos = (torch.arange(t) if positions is None else positions) + offset
    factor = scaling["factor"] if scaling and scaling["type"] == "linear" else 1.0
    eff_base = base * scaling["factor"] ** (r / (r - 2)) if scaling and scaling["type"] == "ntk" else base
    x64 = x.double().requires_grad_()
    y = rope_ref(x64, pos, layout, r, eff_base, factor)
    (y * w.double()).sum().backward()
    tensors[f"{name}.x"] = x
    tensors[f"{name}.w"] = w
    tensors[f"{name}.y"] = y.detach().float()
    tensors[f"{name}.dx"] = x64.grad.float()
    if positions is not None:
        tensors[f"{name}.positions"] = positions.to(torch.int32)
    opts = {"layout": layout, "offset": offset}
    if rotary is not None:
        opts["rotaryDim"] = rotary
    if base != 10000.0:
        opts["base"] = base
    if scaling is not None:
        opts["scaling"] = scaling
    cases.append({"name": name, "shape": list(shape), "positions": positions is not None, "options": opts,
                  "dtype": str(dtype).replace("torch.", "")})


add("rh_default", [2, 3, 5, 8], "rotate-half")
add("rh_d2", [4, 2], "rotate-half")
add("rh_llama", [1, 4, 7, 128], "rotate-half", positions=torch.tensor([0, 5, 9, 100, 2047, 4095, 70000]))
add("rh_bcast", [2, 3, 5, 16], "rotate-half", positions=torch.randint(0, 512, (2, 1, 5), generator=g))
add("il_partial_odd", [3, 5, 11], "interleaved", rotary=6)
add("rh_partial_neox", [2, 6, 64], "rotate-half", rotary=16)
add("rh_base_500k", [3, 9, 64], "rotate-half", base=500000.0)
add("il_base_100", [5, 12], "interleaved", base=100.0)
add("il_offset", [2, 5, 16], "interleaved", offset=37)
add("rh_offset_pos", [2, 3, 32], "rotate-half", offset=1000, positions=torch.tensor([0, 1, 2]))
add("rh_linear", [6, 32], "rotate-half", positions=torch.tensor([0, 1, 7, 1000, 4095, 8191]),
    scaling={"type": "linear", "factor": 4.0})
add("il_linear", [2, 9, 10], "interleaved", scaling={"type": "linear", "factor": 2.5}, offset=3)
add("rh_ntk", [5, 64], "rotate-half", positions=torch.tensor([0, 3, 500, 4000, 16000]),
    scaling={"type": "ntk", "factor": 8.0})
add("il_ntk_partial", [3, 4, 24], "interleaved", rotary=12, scaling={"type": "ntk", "factor": 2.0})
add("rh_f16", [3, 10, 64], "rotate-half", rotary=32, dtype=torch.float16)
add("rh_bf16", [3, 10, 64], "rotate-half", offset=11, dtype=torch.bfloat16)

save_fixture("rope", tensors, cases)
