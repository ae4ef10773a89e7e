"""Fixture for sum/mean/max: forward over axis sets (contiguous, split, all, keepDims), long rows,
tall columns, tied maxima, half dtypes (reference computed in float32 on the half-rounded inputs)
and the gradients of sum(y * w) for a fixed random w."""
import torch

from common import generator, randn, save_fixture

g = generator(7)
tensors, cases = {}, []


def add(name, op, x, axes, keep=False, dtype=torch.float32):
    """x is float32; for half dtypes it is rounded first and the reference runs in float32.
    Gradients are stored for inputs up to 20000 elements (size budget)."""
    xs = x.to(dtype)
    xf = xs.float().requires_grad_(True)
    dims = list(range(x.dim())) if axes is None or axes == [] else axes
    if op == "sum":
        y = xf.sum(dim=dims, keepdim=keep) if x.dim() else xf.sum()
    elif op == "mean":
        y = xf.mean(dim=dims, keepdim=keep) if x.dim() else xf.mean()
    else:
        y = torch.amax(xf, dim=dims, keepdim=keep)
    w = torch.randn(tuple(y.shape), generator=g)
    (y * w).sum().backward()
    tensors[f"{name}.x"] = xs
    tensors[f"{name}.y"] = y.detach()
    tensors[f"{name}.w"] = w
    if x.numel() <= 20000:
        tensors[f"{name}.dx"] = xf.grad
    cases.append({"name": name, "op": op, "axes": axes, "keepDims": keep, "dtype": str(dtype).replace("torch.", "")})


for op in ("sum", "mean", "max"):
    add(f"{op}_1", op, randn(g, 1), None)
    add(f"{op}_3x17_all", op, randn(g, 3, 17), None)
    add(f"{op}_3x17_last", op, randn(g, 3, 17), [-1])
    add(f"{op}_3x17_first_keep", op, randn(g, 3, 17), [0], True)
    add(f"{op}_2x3x1000_02", op, randn(g, 2, 3, 1000), [0, 2])
    add(f"{op}_2x3x1000_1_keep", op, randn(g, 2, 3, 1000), [1], True)
    add(f"{op}_2x3x1000_12", op, randn(g, 2, 3, 1000), [1, 2])
    add(f"{op}_2x3x5x7_13_keep", op, randn(g, 2, 3, 5, 7), [1, 3], True)
    add(f"{op}_4x1x6_02", op, randn(g, 4, 1, 6), [0, 2])
    if op != "mean":  # mean runs sum's kernel; the size budget goes to sum and max
        add(f"{op}_rows_21128", op, randn(g, 2, 21128) + 0.5, [-1])
        add(f"{op}_cols_2000x33", op, randn(g, 2000, 33) + 0.25, [0])
    for dt in (torch.float16, torch.bfloat16):
        short = str(dt).replace("torch.", "")
        add(f"{op}_{short}_2x3x1000_02", op, randn(g, 2, 3, 1000), [0, 2], dtype=dt)
        add(f"{op}_{short}_rows_1500", op, randn(g, 3, 1500) + 0.5, [1], True, dtype=dt)

add("sum_all_66000", "sum", randn(g, 66000) + 0.1, None)

# Tied maxima: small integers, so many entries equal their max.
add("max_ties_rows", "max", torch.randint(-2, 3, (6, 9), generator=g).float(), [1])
add("max_ties_02", "max", torch.randint(-2, 3, (3, 4, 5), generator=g).float(), [0, 2], True)
add("max_ties_all", "max", torch.randint(0, 2, (4, 4), generator=g).float(), None)

save_fixture("reduce", tensors, cases)
