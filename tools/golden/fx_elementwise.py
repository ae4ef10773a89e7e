"""Fixture for the elementwise family: add/sub/mul/div and where under NumPy broadcasting, broadcast_to,
and the unary functions (gelu exact and tanh, silu, pow, ...), with PyTorch's gradients of the loss
sum(y * w) for a fixed random upstream gradient w.

Half-dtype cases store inputs already rounded to the half type (as float32) and the float32
reference computed by PyTorch on those rounded inputs; the tests run kexue in the half type."""
import torch
import torch.nn.functional as F

from common import generator, save_fixture

g = generator(7)
tensors = {}
cases = []


def randn(rng, *shape, scale=1.0):
    """Standard normal values of any shape, [] included."""
    return torch.randn(tuple(shape), generator=rng, dtype=torch.float32) * scale


def away_from_zero(t, margin=0.3):
    """Values with |v| >= margin (for divisors)."""
    return torch.sign(t) * (t.abs() + margin) + (t == 0).float() * margin


def grads(fn, inputs):
    """y = fn(*inputs); the gradients of sum(y * w) for a random w."""
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    w = randn(g, *y.shape)
    (y * w).sum().backward()
    return y.detach(), w, [x.grad for x in xs]


BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
BINARY_SHAPES = [
    ("bcast3", [3, 1, 5], [4, 1]),
    ("scalar", [17], []),
    ("scalar_left", [], [2, 3]),
    ("row", [2, 1003], [1003]),
    ("col", [6, 1], [6, 9]),
    ("outer", [5, 1], [1, 8]),
    ("same", [1031], [1031]),
    ("one", [1], [1]),
]
for op, fn in BINARY.items():
    for tag, sa, sb in BINARY_SHAPES:
        a = randn(g, *sa)
        b = randn(g, *sb)
        if op == "div":
            b = away_from_zero(b)
        name = f"{op}_{tag}"
        y, w, (da, db) = grads(fn, [a, b])
        tensors.update({f"{name}.a": a, f"{name}.b": b, f"{name}.y": y, f"{name}.w": w, f"{name}.da": da, f"{name}.db": db})
        cases.append({"name": name, "kind": "binary", "op": op, "dtype": "float32"})
    # Half types: inputs rounded to the type, reference in float32 on the rounded inputs.
    for dtype, tdt in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        for tag, sa, sb in (("bcast3", [3, 1, 5], [4, 1]), ("row", [2, 1003], [1003])):
            a = randn(g, *sa).to(tdt).float()
            b = randn(g, *sb)
            if op == "div":
                b = away_from_zero(b)
            b = b.to(tdt).float()
            name = f"{op}_{tag}_{dtype}"
            aa, bb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
            y = fn(aa, bb)
            w = randn(g, *y.shape).to(tdt).float()
            (y * w).sum().backward()
            y = y.detach()
            tensors.update({f"{name}.a": a, f"{name}.b": b, f"{name}.y": y, f"{name}.w": w,
                            f"{name}.da": aa.grad, f"{name}.db": bb.grad})
            cases.append({"name": name, "kind": "binary", "op": op, "dtype": dtype})

# Empty tensors broadcast to empty results.
tensors["add_empty.a"] = torch.zeros(0, 3)
tensors["add_empty.b"] = randn(g, 3)
tensors["add_empty.y"] = tensors["add_empty.a"] + tensors["add_empty.b"]

UNARY = {
    "neg": (torch.neg, "any"),
    "exp": (torch.exp, "any"),
    "log": (torch.log, "positive"),
    "sqrt": (torch.sqrt, "positive"),
    "rsqrt": (torch.rsqrt, "positive"),
    "tanh": (torch.tanh, "any"),
    "sigmoid": (torch.sigmoid, "any"),
    "relu": (torch.relu, "nonzero"),
    "silu": (F.silu, "any"),
    "gelu": (lambda x: F.gelu(x, approximate="none"), "wide"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "wide"),
    "pow2": (lambda x: torch.pow(x, 2.0), "any"),
    "pow3": (lambda x: torch.pow(x, 3.0), "any"),
    "pow_half": (lambda x: torch.pow(x, 0.5), "positive"),
    "pow_m1_5": (lambda x: torch.pow(x, -1.5), "positive"),
    "pow_1_7": (lambda x: torch.pow(x, 1.7), "positive"),
    "pow0": (lambda x: torch.pow(x, 0.0), "any"),
}
EXPONENTS = {"pow2": 2.0, "pow3": 3.0, "pow_half": 0.5, "pow_m1_5": -1.5, "pow_1_7": 1.7, "pow0": 0.0}


def unary_input(domain, shape, rng):
    if domain == "positive":
        return torch.empty(*shape).uniform_(0.1, 3.0, generator=rng)
    if domain == "wide":
        return torch.empty(*shape).uniform_(-6.0, 6.0, generator=rng)
    x = randn(rng, *shape, scale=2.0)
    if domain == "nonzero":
        x = away_from_zero(x, 0.05)
    return x


for key, (fn, domain) in UNARY.items():
    base = key.split("_")[0] if key.startswith("gelu") else ("pow" if key.startswith("pow") else key)
    attrs = {"fn": base}
    if key == "gelu_tanh":
        attrs["approximate"] = "tanh"
    if key in EXPONENTS:
        attrs["exponent"] = EXPONENTS[key]
    for dtype, tdt in (("float32", None), ("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        shape = [7, 149] if dtype == "float32" else [3, 97]
        x = unary_input(domain, shape, g)
        if tdt is not None:
            x = x.to(tdt).float()
        xx = x.clone().requires_grad_(True)
        y = fn(xx)
        w = randn(g, *shape)
        if tdt is not None:
            w = w.to(tdt).float()
        (y * w).sum().backward()
        name = f"{key}_{dtype}"
        tensors.update({f"{name}.x": x, f"{name}.y": y.detach(), f"{name}.w": w, f"{name}.dx": xx.grad})
        cases.append({"name": name, "kind": "unary", "dtype": dtype, **attrs})

# Extremes: overflow, underflow, subnormal results, signed zeros, infinities and NaN (forward only).
extreme = torch.tensor([
    -float("inf"), -1e4, -104.5, -103.0, -100.0, -88.0, -87.0, -30.0, -10.0, -0.7, -1e-3, -1e-30, -0.0,
    0.0, 1e-30, 1e-3, 0.62, 0.63, 0.7, 10.0, 30.0, 88.0, 88.7, 88.71, 88.72, 88.7228, 88.8, 100.0, 1e4,
    float("inf"), float("nan"),
], dtype=torch.float32)
for key in ("neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "silu", "gelu", "gelu_tanh", "pow2", "pow_1_7"):
    fn = UNARY[key][0]
    base = "gelu" if key.startswith("gelu") else ("pow" if key.startswith("pow") else key)
    attrs = {"fn": base}
    if key == "gelu_tanh":
        attrs["approximate"] = "tanh"
    if key in EXPONENTS:
        attrs["exponent"] = EXPONENTS[key]
    name = f"{key}_extreme"
    tensors[f"{name}.x"] = extreme
    tensors[f"{name}.y"] = fn(extreme)
    cases.append({"name": name, "kind": "extreme", **attrs})

# where: a uint8 mask broadcast against both branches.
for tag, sc, sa, sb in (("bcast", [3, 1, 5], [4, 1], [5]), ("same", [1031], [1031], [1031]), ("scalar_b", [2, 9], [2, 9], [])):
    c = (torch.rand(*sc, generator=g) > 0.5).to(torch.uint8)
    a = randn(g, *sa)
    b = randn(g, *sb)
    aa, bb = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y = torch.where(c.bool(), aa, bb)
    w = randn(g, *y.shape)
    (y * w).sum().backward()
    name = f"where_{tag}"
    tensors.update({f"{name}.c": c, f"{name}.a": a, f"{name}.b": b, f"{name}.y": y.detach(), f"{name}.w": w,
                    f"{name}.da": aa.grad, f"{name}.db": bb.grad})
    cases.append({"name": name, "kind": "where"})

# broadcast_to
x = randn(g, 3, 1, 5)
xx = x.clone().requires_grad_(True)
y = xx.expand(2, 3, 4, 5)
w = randn(g, 2, 3, 4, 5)
(y * w).sum().backward()
tensors.update({"bto.x": x, "bto.y": y.detach().contiguous(), "bto.w": w, "bto.dx": xx.grad})
cases.append({"name": "bto", "kind": "broadcast_to", "shape": [2, 3, 4, 5]})

save_fixture("elementwise", tensors, cases)
