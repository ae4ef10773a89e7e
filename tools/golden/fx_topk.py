"""Fixture for topk: largest and smallest, k = 1 and k = the axis size, other axes, ties, NaN, ±inf and
±0, float16/bfloat16 inputs (reference on the half values), the heap's and the sort's sizes, and a
[16, 50000] row case whose input is a formula (the test rebuilds it, so the file stays small).

PyTorch's CPU topk does not order equal entries (its partial_sort / nth_element are not stable), so
the indices here are those of torch.sort(stable=True), which puts equal entries in index order
(NaN above every number, as topk); the script checks that topk's values are the same and that its
indices differ only among equal entries, and records in "torchSameOrder" whether they are the same.
For cases without ties, "dx" is PyTorch's gradient of sum(values * w)."""
import torch

from common import generator, randn, save_fixture

g = generator(23)
tensors, cases = {}, []


def same_values(a, b):
    return bool(torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))


def reference(xf, k, axis, largest):
    """Values and indices with equal entries in index order, checked against torch.topk."""
    s = torch.sort(xf, dim=axis, descending=largest, stable=True)
    idx = s.indices.narrow(axis, 0, k)
    v, i = torch.topk(xf, k, dim=axis, largest=largest, sorted=True)
    assert same_values(v, s.values.narrow(axis, 0, k))
    assert same_values(xf.gather(axis, i), xf.gather(axis, idx))
    return idx, bool(torch.equal(i, idx))


def add(name, x, k, axis=-1, largest=True, dtype=torch.float32, grad=False, store_x=True, extra=None):
    xs = x.to(dtype)
    xf = xs.float()
    idx, same = reference(xf, k, axis, largest)
    tensors[f"{name}.values"] = xs.gather(axis, idx)
    tensors[f"{name}.indices"] = idx.to(torch.int32)
    if store_x:
        tensors[f"{name}.x"] = xs
    if grad:
        assert same, f"{name}: a gradient case needs an unambiguous order"
        xg = xf.clone().requires_grad_(True)
        v, _ = torch.topk(xg, k, dim=axis, largest=largest)
        w = torch.randn(tuple(v.shape), generator=g)
        (v * w).sum().backward()
        tensors[f"{name}.w"] = w
        tensors[f"{name}.dx"] = xg.grad
    case = {"name": name, "k": k, "axis": axis, "largest": largest, "dtype": str(dtype).replace("torch.", ""),
            "grad": grad, "torchSameOrder": same}
    cases.append(dict(case, **(extra or {})))


def ints(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=g).float()


def big_rows(rows, cols):
    """The formula input of the large case (exact in float32: multiples of 1/256 in [-8, 8)): each
    value about 12 times per row, and in rows r % 4 == 1 NaN at columns c % 9001 == r."""
    r = torch.arange(rows).unsqueeze(1)
    c = torch.arange(cols).unsqueeze(0)
    x = ((c * 7919 + r * 104729) % 4096).float() / 256 - 8
    x[(r % 4 == 1) & (c % 9001 == r)] = float("nan")
    return x


# plain rows (the sort path: k above a 64th of the row)
add("largest_3x17_k5", randn(g, 3, 17), 5, grad=True)
add("smallest_3x17_k5", randn(g, 3, 17), 5, largest=False, grad=True)
add("largest_4x9_k1", randn(g, 4, 9), 1, grad=True)
add("smallest_4x9_k1", randn(g, 4, 9), 1, largest=False)
add("largest_3x17_kC", randn(g, 3, 17), 17, grad=True)
add("smallest_2x1_kC", randn(g, 2, 1), 1, largest=False)
add("vector_k3", randn(g, 12), 3)
# other axes
add("axis1_5x30x4_k3", randn(g, 5, 30, 4), 3, axis=1, grad=True)
add("axis0_9x6_k4_smallest", randn(g, 9, 6), 4, axis=0, largest=False, grad=True)
add("axis_neg2_2x7x3_k7", randn(g, 2, 7, 3), 7, axis=-2)
# ties: few distinct values, so most entries tie
add("ties_4x40_k7", ints(0, 5, 4, 40), 7)
add("ties_4x40_k7_smallest", ints(0, 5, 4, 40), 7, largest=False)
add("ties_axis0_40x3_k9", ints(-2, 3, 40, 3), 9, axis=0)
# NaN, ±inf, ±0
special = ints(-3, 4, 3, 20)
special[0, [2, 11, 17]] = float("nan")
special[1, [0, 5]] = float("inf")
special[1, [3, 9]] = float("-inf")
special[2, :] = 0.0
special[2, [1, 4, 8, 15]] = -0.0
special[2, 6] = float("nan")
for k in (6, 20):
    add(f"special_3x20_k{k}", special, k)
    add(f"special_3x20_k{k}_smallest", special, k, largest=False)
all_nan = torch.full((2, 5), float("nan"))
all_nan[1, 3] = 1.0
add("nan_rows_k3", all_nan, 3)
add("nan_rows_k3_smallest", all_nan, 3, largest=False)
# the heap (k at most a 64th of the row), with ties and NaN
heap = ints(-50, 50, 6, 2000)
heap[1, [7, 700, 1999]] = float("nan")
heap[3, :] = 0.0
add("heap_6x2000_k5", heap, 5)
add("heap_6x2000_k31_smallest", heap, 31, largest=False)
column_heap = ints(-50, 50, 2000, 3)
column_heap[[5, 1500], 1] = float("nan")
add("heap_axis0_2000x3_k8", column_heap, 8, axis=0)
add("heap_2x5000_k16_grad", randn(g, 2, 5000), 16, grad=True)
tiny = torch.zeros(2, 2000)
tiny[0, [900, 40, 1700]] = 1e-45  # subnormals: above zero, whatever a CPU's DAZ mode
tiny[0, [5, 1300]] = -1e-45
tiny[1, [3, 600]] = -0.0
tiny[1, 1000] = 1.2e-38
add("heap_subnormal_2x2000_k4", tiny, 4)
add("heap_subnormal_2x2000_k4_smallest", tiny, 4, largest=False)
# large k on long rows (the sort path)
add("sort_2x3000_k500", randn(g, 2, 3000), 500)
add("sort_2x3000_k500_ties", ints(0, 100, 2, 3000), 500, largest=False)
# half inputs: the reference ranks the half values (widened exactly), ties included
for dt in (torch.float16, torch.bfloat16):
    short = str(dt).replace("torch.", "")
    add(f"{short}_4x300_k10", randn(g, 4, 300, scale=3), 10, dtype=dt)
    add(f"{short}_4x300_k10_smallest", randn(g, 4, 300, scale=3), 10, largest=False, dtype=dt)
    add(f"{short}_axis0_50x5_k50", randn(g, 50, 5), 50, axis=0, dtype=dt)
    add(f"{short}_special_3x20_k6", special, 6, dtype=dt)
# the vocabulary-sized rows of the typical use, from a formula (not stored)
for k, largest in ((8, True), (8, False), (1, True)):
    add(f"big_16x50000_k{k}_{'largest' if largest else 'smallest'}", big_rows(16, 50000), k, largest=largest,
        store_x=False, extra={"formula": "big_rows", "shape": [16, 50000]})

save_fixture("topk", tensors, cases)
