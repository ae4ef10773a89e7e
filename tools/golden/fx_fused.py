"""Fixture for the fused tier: bias_gelu, add_layer_norm and add_rms_norm, forward outputs and the
gradients from PyTorch (computed in float64, stored as float32).

bias_gelu: y = gelu(x + bias) with the loss sum(y * w). The norms: s = x + residual, y = norm(s)
with the loss sum(y * w) + sum(s * w2), so that the gradient reaching s from outside (ds = w2) is
exercised. Half cases store the half-rounded inputs; s is the float32 sum rounded to the case's
dtype (what the op stores and normalises), and its rounding passes gradients through unchanged."""
import torch
import torch.nn.functional as F

from common import generator, randn, rms_norm_ref, save_fixture, store_norm_params

g = generator(11)
tensors, cases = {}, []


def leaf(t):
    return t.double().requires_grad_() if t is not None else None


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def bias_gelu_case(name, shape, approximate="none", dtype=torch.float32, scale=2.0):
    d = shape[-1]
    x = randn(g, *shape, scale=scale).to(dtype)
    b = randn(g, d).to(dtype)
    w = randn(g, *shape).to(dtype)
    x64, b64 = leaf(x), leaf(b)
    y = F.gelu(x64 + b64, approximate=approximate)
    (y * w.double()).sum().backward()
    for role, t in (("x", x), ("bias", b), ("w", w)):
        tensors[f"{name}.{role}"] = t
    tensors[f"{name}.y"] = y.detach().float()
    tensors[f"{name}.dx"] = x64.grad.float()
    tensors[f"{name}.dbias"] = b64.grad.float()
    cases.append({"name": name, "op": "bias_gelu", "shape": list(shape), "approximate": approximate,
                  "dtype": dtype_name(dtype)})


def add_norm_case(name, op, shape, eps, gamma=True, beta=True, dtype=torch.float32, offset=0.0):
    d = shape[-1]
    x = (randn(g, *shape) + offset).to(dtype)
    r = randn(g, *shape).to(dtype)
    gm = (1.0 + 0.5 * randn(g, d)).to(dtype) if gamma else None
    bt = (0.5 * randn(g, d)).to(dtype) if (beta and op == "add_layer_norm") else None
    w = randn(g, *shape).to(dtype)
    w2 = randn(g, *shape).to(dtype)
    s = (x.float() + r.float()).to(dtype)
    x64, r64, g64, b64 = leaf(x), leaf(r), leaf(gm), leaf(bt)
    exact = x64 + r64
    s64 = exact + (s.double() - exact).detach()  # the stored (rounded) sum; rounding passes gradients
    if op == "add_layer_norm":
        y = F.layer_norm(s64, [d], g64, b64, eps)
    else:
        y = rms_norm_ref(s64, g64, eps)
    ((y * w.double()).sum() + (s64 * w2.double()).sum()).backward()
    for role, t in (("x", x), ("residual", r), ("w", w), ("w2", w2), ("s", s)):
        tensors[f"{name}.{role}"] = t
    tensors[f"{name}.y"] = y.detach().float()
    tensors[f"{name}.dx"] = x64.grad.float()
    tensors[f"{name}.dresidual"] = r64.grad.float()
    store_norm_params(tensors, name, gm, g64, bt, b64)
    cases.append({"name": name, "op": op, "shape": list(shape), "eps": eps, "gamma": gm is not None,
                  "beta": bt is not None, "dtype": dtype_name(dtype)})


bias_gelu_case("bg_small", [4, 8])
bias_gelu_case("bg_tanh", [3, 100], approximate="tanh")
bias_gelu_case("bg_rank3", [2, 3, 70])
bias_gelu_case("bg_rank1", [40])
bias_gelu_case("bg_d1", [5, 1])
bias_gelu_case("bg_ffn", [4, 3072], scale=3.0)
bias_gelu_case("bg_f16", [16, 96], dtype=torch.float16)
bias_gelu_case("bg_bf16", [16, 96], dtype=torch.bfloat16)
bias_gelu_case("bg_bf16_tanh", [8, 130], approximate="tanh", dtype=torch.bfloat16)

for op, eps, p in (("add_layer_norm", 1e-5, "aln"), ("add_rms_norm", 1e-6, "arms")):
    add_norm_case(f"{p}_d3", op, [1, 3], eps)
    add_norm_case(f"{p}_d17", op, [64, 17], eps)
    add_norm_case(f"{p}_d768", op, [8, 768], eps)
    add_norm_case(f"{p}_d1030", op, [3, 1030], eps)
    add_norm_case(f"{p}_rank3", op, [2, 3, 33], eps)
    add_norm_case(f"{p}_rank1", op, [40], eps)
    add_norm_case(f"{p}_nogamma", op, [6, 20], eps, gamma=False)
    add_norm_case(f"{p}_offset", op, [7, 300], eps, offset=50.0)
    add_norm_case(f"{p}_f16", op, [16, 96], eps, dtype=torch.float16)
    add_norm_case(f"{p}_bf16", op, [16, 96], eps, dtype=torch.bfloat16)
add_norm_case("aln_nobeta", "add_layer_norm", [6, 20], 1e-5, beta=False)

save_fixture("fused", tensors, cases)
