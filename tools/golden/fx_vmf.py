"""Fixture for the vMF distribution's special functions (packages/core-cuda/src/bessel.ts, ops/vmf.ts):
ln I_v(x) from references independent of kexue's code paths (PyTorch's i0e/i1e for v = 0, 1; the
closed forms of I_{1/2} and I_{3/2}; a power series summed with math.fsum in log space, in double),
and A_d(kappa) = I_{d/2}/I_{d/2-1} from the same series. No scipy or mpmath (not installed here)."""
import math

import torch

from common import save_fixture


def log_i_series(v, x):
    """ln I_v(x) = ln sum_k (x/2)^(2k+v) / (k! Gamma(k+v+1)), every term until they fall e^-50 below the largest."""
    lx = math.log(x / 2)
    logs = []
    k = 0
    while True:
        t = (2 * k + v) * lx - math.lgamma(k + 1) - math.lgamma(k + v + 1)
        logs.append(t)
        if k > x and t < max(logs) - 50:
            break
        k += 1
    top = max(logs)
    return top + math.log(math.fsum(math.exp(t - top) for t in logs))


def log_sinh(x):
    return x + math.log1p(-math.exp(-2 * x)) - math.log(2)


cases = []
xs = [0.05, 0.7, 3.0, 20.0, 100.0, 450.0, 499.0, 501.0, 800.0, 2500.0, 6000.0]
for x in xs:
    xt = torch.tensor([x], dtype=torch.float64)
    cases.append({"name": f"i0e x={x}", "v": 0.0, "x": x, "log_i": math.log(torch.special.i0e(xt).item()) + x, "source": "torch i0e"})
    cases.append({"name": f"i1e x={x}", "v": 1.0, "x": x, "log_i": math.log(torch.special.i1e(xt).item()) + x, "source": "torch i1e"})
    half = 0.5 * math.log(2 / (math.pi * x))
    cases.append({"name": f"I_1/2 x={x}", "v": 0.5, "x": x, "log_i": half + log_sinh(x), "source": "sqrt(2/(pi x)) sinh x"})
    # I_{3/2}(x) = sqrt(2/(pi x)) (cosh x - sinh x / x) = sqrt(2/(pi x)) e^x (1 + e^-2x - (1 - e^-2x)/x) / 2
    e2 = math.exp(-2 * x)
    cases.append({"name": f"I_3/2 x={x}", "v": 1.5, "x": x, "log_i": half + x + math.log((1 + e2 - (1 - e2) / x) / 2), "source": "closed form"})
for v in [7.0, 31.0, 99.5, 127.0, 255.0]:
    for x in [0.5, 10.0, 100.0, 300.0, 1000.0, 3000.0]:
        cases.append({"name": f"series v={v} x={x}", "v": v, "x": x, "log_i": log_i_series(v, x), "source": "series"})

ratios = []
for d in [2, 3, 4, 16, 64, 256, 512]:
    for kappa in [0.5, 5.0, 20.0, 100.0, 1000.0, 4000.0]:
        ratios.append({"d": d, "kappa": kappa, "a": math.exp(log_i_series(d / 2, kappa) - log_i_series(d / 2 - 1, kappa))})

# z = w mu + sqrt(1 - w^2) nu, nu = the normalised part of eps orthogonal to mu, and its gradients
# for a fixed upstream gradient (torch autograd in float64, stored as float32)
g = torch.Generator().manual_seed(20)
tensors = {}
for name, (B, d) in {"compose_small": (37, 5), "compose_wide": (9, 130)}.items():
    mu = torch.randn(B, d, generator=g, dtype=torch.float64)
    mu = (mu / mu.norm(dim=-1, keepdim=True)).requires_grad_()
    w = (torch.rand(B, generator=g, dtype=torch.float64) * 1.9 - 0.95).requires_grad_()
    eps = torch.randn(B, d, generator=g, dtype=torch.float64).requires_grad_()
    up = torch.randn(B, d, generator=g, dtype=torch.float64)
    t = eps - (eps * mu).sum(-1, keepdim=True) * mu
    z = w[:, None] * mu + torch.sqrt(1 - w[:, None] ** 2) * t / t.norm(dim=-1, keepdim=True)
    (z * up).sum().backward()
    for role, v in {"mu": mu, "w": w, "eps": eps, "up": up, "z": z, "dmu": mu.grad, "dw": w.grad, "deps": eps.grad}.items():
        tensors[f"{name}.{role}"] = v.detach().float()
    cases.append({"name": name, "B": B, "d": d, "compose": True})

save_fixture("vmf", tensors, cases + [{"name": "mean lengths", "ratios": ratios}])
