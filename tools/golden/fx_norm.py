"""Fixture for layer_norm and rms_norm: forward outputs and the gradients of sum(y * w) for a fixed
random upstream w, from PyTorch (computed in float64, stored as float32). Half cases store the
half-rounded inputs; their reference is float32/64 math on those same rounded values."""
import torch
import torch.nn.functional as F

from common import generator, randn, rms_norm_ref, save_fixture, store_norm_params

g = generator(7)
tensors, cases = {}, []


def add_case(name, op, shape, eps, gamma=True, beta=True, dtype=torch.float32, offset=0.0, scale=1.0):
    d = shape[-1]
    x = randn(g, *shape, scale=scale) + offset
    gm = (1.0 + 0.5 * randn(g, d)) if gamma else None
    bt = 0.5 * randn(g, d) if (beta and op == "layer_norm") else None
    w = randn(g, *shape)
    # Round inputs to the case's dtype; the reference runs on exactly those values.
    x, w = x.to(dtype), w.to(dtype)
    gm = gm.to(dtype) if gm is not None else None
    bt = bt.to(dtype) if bt is not None else None
    leaves = [t.double().requires_grad_() if t is not None else None for t in (x, gm, bt)]
    x64, g64, b64 = leaves
    if op == "layer_norm":
        y = F.layer_norm(x64, [d], g64, b64, eps)
    else:
        y = rms_norm_ref(x64, g64, eps)
    (y * w.double()).sum().backward()
    tensors[f"{name}.x"] = x
    tensors[f"{name}.w"] = w
    tensors[f"{name}.y"] = y.detach().float()
    tensors[f"{name}.dx"] = x64.grad.float()
    store_norm_params(tensors, name, gm, g64, bt, b64)
    cases.append({"name": name, "op": op, "shape": list(shape), "eps": eps, "gamma": gm is not None,
                  "beta": bt is not None, "dtype": str(dtype).replace("torch.", "")})


for op in ("layer_norm", "rms_norm"):
    eps = 1e-5 if op == "layer_norm" else 1e-6
    p = "ln" if op == "layer_norm" else "rms"
    add_case(f"{p}_d1", op, [5, 1], eps)
    add_case(f"{p}_d3", op, [1, 3], eps)
    add_case(f"{p}_d17", op, [64, 17], eps)
    add_case(f"{p}_d768", op, [8, 768], eps)
    add_case(f"{p}_d1030", op, [3, 1030], eps)
    add_case(f"{p}_rank3", op, [2, 3, 33], eps)
    add_case(f"{p}_rank1", op, [40], eps)
    add_case(f"{p}_nogamma", op, [6, 20], eps, gamma=False)
    add_case(f"{p}_eps", op, [4, 24], 1e-2, scale=0.1)
    add_case(f"{p}_offset", op, [7, 300], eps, offset=50.0)  # large mean: needs the two-pass variance
    add_case(f"{p}_f16", op, [16, 96], eps, dtype=torch.float16)
    add_case(f"{p}_bf16", op, [16, 96], eps, dtype=torch.bfloat16)
    add_case(f"{p}_f16_long", op, [2, 1500], eps, dtype=torch.float16)
add_case("ln_nobeta", "layer_norm", [6, 20], 1e-5, beta=False)
add_case("ln_betaonly", "layer_norm", [6, 20], 1e-5, gamma=False, beta=True)

save_fixture("norm", tensors, cases)
