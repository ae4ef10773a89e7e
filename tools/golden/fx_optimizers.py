"""Fixtures for @kexue/optimizers: 20 steps of each optimizer on a small set of named parameters.

* AdamW and SGD: torch.optim itself, run twice: in float64 (the reference the tests hold to
  1e-6) and in float32 (to report how close PyTorch's own float32 arithmetic comes).
* Tiger and Lion: a float64 re-implementation of the formulas of ALGORITHMS.md §1 written below
  (not torch, not the original code): name-based parameter classes, per-tensor and per-row RMS
  learning rates, a zero-initialised matrix and an all-zero embedding row (which must not move),
  gradient accumulation folded into the momentum (k = 4, schedule counted in micro-steps), and
  the non-finite guard (NaN and +-Inf: momentum kept, parameter shrunk toward 0 or 1 for gamma).

Inputs (initial parameters and gradients) are float32; every reference runs on exactly those
values. Per case the file holds <case>.init.<param>, <case>.grad.<param> [steps, ...] and the
reference parameters (and Tiger/Lion momenta) after each step, <case>.theta.<param> [steps, ...]
(<case>.theta32.<param> for torch's float32 run) and <case>.m.<param>.
Writes packages/optimizers/test/fixtures/optimizers.safetensors.
"""
import math
import os
import re

import torch

import common
from common import generator, randn, save_fixture

common.FIXTURES = os.path.join(common.ROOT, "packages", "optimizers", "test", "fixtures")

STEPS = 20
g = generator(20230307)
tensors, cases = {}, []


def make_params():
    p = {
        "dense.kernel": randn(g, 6, 5, scale=0.5),
        "dense.bias": randn(g, 5, scale=0.1),
        "norm.gamma": 1.0 + randn(g, 5, scale=0.1),
        "norm.beta": randn(g, 5, scale=0.1),
        "word_embeddings": randn(g, 7, 4, scale=0.3),
        "zero.kernel": torch.zeros(3, 4),
    }
    p["word_embeddings"][2] = 0.0  # an all-zero row: per-row RMS 0, it never moves
    return p


def make_grads(params, bad=()):
    """STEPS gradients per parameter; `bad` lists (step, name, value) entries to poison."""
    grads = {n: randn(g, STEPS, *t.shape) for n, t in params.items()}
    grads["word_embeddings"][:, 5] = 0.0  # a row that is never touched: momentum stays 0
    for step, name, value in bad:
        grads[name][step].view(-1)[1] = value
    return grads


# --- Tiger / Lion reference (float64) ----------------------------------------------------------

def piecewise_linear(t, schedule, from_zero=True):
    pts = sorted((float(k), float(v)) for k, v in schedule.items())
    if from_zero and pts[0][0] != 0:
        pts = [(0.0, 0.0)] + pts
    if t < pts[0][0]:
        return pts[0][1]
    for (t0, x0), (t1, x1) in zip(pts, pts[1:]):
        if t < t1:
            return x0 + (x1 - x0) / (t1 - t0) * (t - t0)
    return pts[-1][1]


def rms(x, axis=None):
    if axis is None:
        return math.sqrt(float((x * x).mean()))
    return (x * x).mean(dim=axis, keepdim=True).sqrt()


def tiger_reference(params, grads, lr, beta, wd, k, schedule, shrink):
    theta = {n: t.double().clone() for n, t in params.items()}
    m = {n: torch.zeros_like(t) for n, t in theta.items()}
    hist_t = {n: [] for n in theta}
    hist_m = {n: [] for n in theta}
    margins = []
    for t in range(STEPS):
        alpha = lr * piecewise_linear(t, schedule)
        b1 = beta if t % k == 0 else 1.0
        b2 = (1.0 - beta) / k
        update = (t + 1) % k == 0
        for n in theta:
            gr = grads[n][t].double()
            x = theta[n]
            if not bool(torch.isfinite(gr).all()):
                centre = 1.0 if "gamma" in n else 0.0
                theta[n] = (x - centre) * shrink + centre
            else:
                if re.search("bias|beta|gamma", n):
                    eta, d = 0.5 * alpha, 0.0
                elif "embeddings" in n:
                    eta, d = alpha * rms(x, -1), wd
                else:
                    eta, d = alpha * rms(x), wd
                m[n] = b1 * m[n] + b2 * gr
                nz = m[n][m[n] != 0].abs()
                if nz.numel():
                    margins.append(float(nz.min() / m[n].abs().max()))
                if update:
                    theta[n] = x - eta * (torch.sign(m[n]) + d * x)
            hist_t[n].append(theta[n].clone())
            hist_m[n].append(m[n].clone())
    return hist_t, hist_m, min(margins)


def lion_reference(params, grads, lr, beta1, beta2, wd):
    theta = {n: t.double().clone() for n, t in params.items()}
    m = {n: torch.zeros_like(t) for n, t in theta.items()}
    hist_t = {n: [] for n in theta}
    hist_m = {n: [] for n in theta}
    margins = []
    for t in range(STEPS):
        for n in theta:
            gr = grads[n][t].double()
            c = beta1 * m[n] + (1 - beta1) * gr
            nz = c[c != 0].abs()
            if nz.numel():
                margins.append(float(nz.min() / c.abs().max()))
            theta[n] = theta[n] - lr * (torch.sign(c) + wd * theta[n])
            m[n] = beta2 * m[n] + (1 - beta2) * gr
            hist_t[n].append(theta[n].clone())
            hist_m[n].append(m[n].clone())
    return hist_t, hist_m, min(margins)


# --- torch.optim runs --------------------------------------------------------------------------

def torch_run(params, grads, make_opt, dtype):
    ps = {n: torch.nn.Parameter(t.to(dtype).clone()) for n, t in params.items()}
    opt = make_opt(list(ps.values()))
    hist = {n: [] for n in ps}
    for t in range(STEPS):
        for n, p in ps.items():
            p.grad = grads[n][t].to(dtype).clone()
        opt.step()
        for n, p in ps.items():
            hist[n].append(p.detach().clone())
    return hist


def store(case, params, grads, hists):
    for n, t in params.items():
        tensors[f"{case}.init.{n}"] = t
        tensors[f"{case}.grad.{n}"] = grads[n]
        for role, hist in hists.items():
            tensors[f"{case}.{role}.{n}"] = torch.stack(hist[n]).float()


def add_sign_case(name, kind, options, ref, bad=()):
    params = make_params()
    grads = make_grads(params, bad)
    hist_t, hist_m, margin = ref(params, grads)
    # A momentum within float32 rounding of 0 could flip its sign and make the comparison
    # meaningless: float32 storage of m over 20 steps errs by ~20 ulp (~1e-6) of max |m|.
    assert margin > 1e-5, f"{name}: a momentum came within {margin:.2e} of 0"
    store(name, params, grads, {"theta": hist_t, "m": hist_m})
    cases.append({"name": name, "optimizer": kind, "options": options, "steps": STEPS,
                  "params": {n: list(t.shape) for n, t in params.items()},
                  "nonFinite": [[s, n] for s, n, _ in bad], "margin": margin})
    print(f"{name}: smallest |momentum| / max |momentum| = {margin:.3g}")


def add_torch_case(name, kind, options, make_opt):
    params = make_params()
    grads = make_grads(params)
    h64 = torch_run(params, grads, make_opt, torch.float64)
    h32 = torch_run(params, grads, make_opt, torch.float32)
    store(name, params, grads, {"theta": h64, "theta32": h32})
    cases.append({"name": name, "optimizer": kind, "options": options, "steps": STEPS,
                  "params": {n: list(t.shape) for n, t in params.items()}})


inf, nan = float("inf"), float("nan")

add_sign_case("tiger_k1", "tiger",
              {"learningRate": 2e-3, "beta": 0.965, "weightDecay": 0.01, "shrinkRatio": 0.99},
              lambda p, gr: tiger_reference(p, gr, 2e-3, 0.965, 0.01, 1, {0: 1}, 0.99),
              bad=[(7, "dense.kernel", inf), (11, "norm.gamma", nan), (12, "dense.bias", -inf)])
add_sign_case("tiger_k4", "tiger",
              {"learningRate": 3e-3, "beta": 0.945, "weightDecay": 0.02, "gradAccumSteps": 4,
               "schedule": {"8": 1, "16": 0.5}, "shrinkRatio": 0.9},
              lambda p, gr: tiger_reference(p, gr, 3e-3, 0.945, 0.02, 4, {8: 1, 16: 0.5}, 0.9),
              bad=[(5, "word_embeddings", nan), (8, "norm.gamma", inf)])
add_sign_case("lion_v2", "lion", {"learningRate": 3e-4, "beta1": 0.95, "beta2": 0.98, "weightDecay": 0.01},
              lambda p, gr: lion_reference(p, gr, 3e-4, 0.95, 0.98, 0.01))
add_sign_case("lion_paper", "lion", {"learningRate": 1e-3, "beta1": 0.9, "beta2": 0.99, "weightDecay": 0.1},
              lambda p, gr: lion_reference(p, gr, 1e-3, 0.9, 0.99, 0.1))

add_torch_case("adamw_default", "adamw", {}, lambda ps: torch.optim.AdamW(ps))
add_torch_case("adamw_custom", "adamw", {"learningRate": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weightDecay": 0.1},
               lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1))
add_torch_case("sgd_plain", "sgd", {"learningRate": 0.05},
               lambda ps: torch.optim.SGD(ps, lr=0.05))
add_torch_case("sgd_momentum", "sgd", {"learningRate": 0.02, "momentum": 0.9, "weightDecay": 0.01},
               lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, weight_decay=0.01))
add_torch_case("sgd_nesterov", "sgd", {"learningRate": 0.02, "momentum": 0.9, "nesterov": True, "weightDecay": 1e-3},
               lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3))
add_torch_case("sgd_dampening", "sgd", {"learningRate": 0.03, "momentum": 0.5, "dampening": 0.1},
               lambda ps: torch.optim.SGD(ps, lr=0.03, momentum=0.5, dampening=0.1))

save_fixture("optimizers", tensors, cases)
