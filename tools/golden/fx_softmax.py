"""Fixture for softmax, log_softmax and cross_entropy: forward along various axes (incl. -inf
entries), long rows, half dtypes (reference in float32 on the half-rounded inputs), and the
gradients of sum(y * w) for a fixed random w; cross-entropy with ignore_index (-100 and custom),
21128-class rows, half logits and an all-ignored batch (NaN loss)."""
import torch
import torch.nn.functional as F

from common import generator, randn, save_fixture

g = generator(11)
tensors, cases = {}, []


def add_softmax(name, op, x, axis, dtype=torch.float32):
    xs = x.to(dtype)
    xf = xs.float().requires_grad_(True)
    y = F.softmax(xf, dim=axis) if op == "softmax" else F.log_softmax(xf, dim=axis)
    w = torch.randn(tuple(y.shape), generator=g)
    (y * w).sum().backward()
    tensors.update({f"{name}.x": xs, f"{name}.y": y.detach(), f"{name}.w": w, f"{name}.dx": xf.grad})
    cases.append({"name": name, "op": op, "axis": axis, "dtype": str(dtype).replace("torch.", "")})


def add_ce(name, logits, labels, ignore=-100, dtype=torch.float32):
    xs = logits.to(dtype)
    xf = xs.float().requires_grad_(True)
    loss = F.cross_entropy(xf, labels.long(), ignore_index=ignore, reduction="mean")
    w = torch.randn((), generator=g)
    (loss * w).backward()
    tensors.update({f"{name}.logits": xs, f"{name}.labels": labels.to(torch.int32), f"{name}.loss": loss.detach(),
                    f"{name}.w": w, f"{name}.dx": xf.grad})
    cases.append({"name": name, "op": "cross_entropy", "ignoreIndex": ignore, "dtype": str(dtype).replace("torch.", "")})


for op in ("softmax", "log_softmax"):
    add_softmax(f"{op}_1", op, randn(g, 1), -1)
    add_softmax(f"{op}_3x17_last", op, randn(g, 3, 17, scale=3), -1)
    add_softmax(f"{op}_3x17_axis0", op, randn(g, 3, 17, scale=3), 0)
    add_softmax(f"{op}_2x3x1000_last", op, randn(g, 2, 3, 1000, scale=4), -1)
    add_softmax(f"{op}_2x3x1000_axis1", op, randn(g, 2, 3, 1000, scale=4), 1)
    add_softmax(f"{op}_5x40x7_axis1", op, randn(g, 5, 40, 7, scale=2), 1)
    add_softmax(f"{op}_2x5000_last", op, randn(g, 2, 5000, scale=5), -1)
    masked = randn(g, 4, 33, scale=3)
    masked[:, 20:] = float("-inf")
    masked[1, :5] = float("-inf")
    add_softmax(f"{op}_masked_4x33", op, masked, -1)
    for dt in (torch.float16, torch.bfloat16):
        short = str(dt).replace("torch.", "")
        add_softmax(f"{op}_{short}_3x17_axis0", op, randn(g, 3, 17, scale=3), 0, dtype=dt)
        add_softmax(f"{op}_{short}_2x3x1000_last", op, randn(g, 2, 3, 1000, scale=4), -1, dtype=dt)

add_ce("ce_8x10", randn(g, 8, 10, scale=2), torch.randint(0, 10, (8,), generator=g))
labels = torch.randint(0, 33, (16,), generator=g)
labels[[1, 4, 5, 11]] = -100
add_ce("ce_ignore_16x33", randn(g, 16, 33, scale=2), labels)
labels = torch.randint(0, 7, (12,), generator=g)
labels[[0, 3]] = 0
add_ce("ce_custom_ignore_0", randn(g, 12, 7, scale=2), labels, ignore=0)
labels = torch.randint(0, 21128, (4,), generator=g)
add_ce("ce_21128", randn(g, 4, 21128, scale=3), labels)
add_ce("ce_1x1", randn(g, 1, 1), torch.zeros(1, dtype=torch.int64))
for dt in (torch.float16, torch.bfloat16):
    short = str(dt).replace("torch.", "")
    add_ce(f"ce_{short}_8x1000", randn(g, 8, 1000, scale=3), torch.randint(0, 1000, (8,), generator=g), dtype=dt)
add_ce("ce_all_ignored", randn(g, 3, 5), torch.full((3,), -100, dtype=torch.int64))

save_fixture("softmax", tensors, cases)
