"""Fixture for the shape ops: permute/transpose, slice and concat on float32, int32, uint8 and
bfloat16 data, with PyTorch's gradients of loss = sum(y * w) for a fixed random w (float cases)."""
import torch

from common import generator, randn, save_fixture

g = generator(11)
tensors, cases = {}, []


def data(shape, dtype):
    if dtype == torch.float32:
        return randn(g, *shape)
    if dtype == torch.bfloat16:
        return randn(g, *shape).to(torch.bfloat16)
    if dtype == torch.int32:
        return torch.randint(-2**31, 2**31 - 1, shape, generator=g, dtype=torch.int32)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


def record(name, xs, fn, attrs):
    """fn maps the inputs to y; float32 inputs also get gradients."""
    grads = all(x.dtype == torch.float32 for x in xs)
    xs = [x.clone().requires_grad_(grads) for x in xs]
    y = fn(*xs)
    for i, x in enumerate(xs):
        tensors[f"{name}.x{i}"] = x.detach()
    tensors[f"{name}.y"] = y.detach()
    if grads:
        w = randn(g, *y.shape)
        (y * w).sum().backward()
        tensors[f"{name}.w"] = w
        for i, x in enumerate(xs):
            tensors[f"{name}.dx{i}"] = x.grad
    cases.append({"name": name, "inputs": len(xs), "grads": grads, **attrs})


def permute(name, shape, perm, dtype=torch.float32):
    record(name, [data(shape, dtype)], lambda x: x.permute(*perm), {"op": "permute", "perm": perm})


def transpose(name, shape, a0, a1, dtype=torch.float32):
    record(name, [data(shape, dtype)], lambda x: x.transpose(a0, a1), {"op": "transpose", "axis0": a0, "axis1": a1})


def slice_(name, shape, begin, size, dtype=torch.float32):
    def fn(x):
        for a, (b, s) in enumerate(zip(begin, size)):
            x = x.narrow(a, b, x.shape[a] - b if s == -1 else s)
        return x
    record(name, [data(shape, dtype)], fn, {"op": "slice", "begin": begin, "size": size})


def concat(name, shapes, axis, dtype=torch.float32):
    record(name, [data(s, dtype) for s in shapes], lambda *xs: torch.cat(xs, axis), {"op": "concat", "axis": axis})


permute("perm_rows", [2, 3, 4, 5], [0, 2, 1, 3])          # last axis stays: row copies
permute("perm_general", [2, 3, 4, 5], [3, 1, 0, 2])       # tiled general case
permute("perm_last2", [3, 37, 50], [0, 2, 1])             # batched transpose, odd sizes > a tile
permute("perm_ones", [1, 5, 1, 3], [3, 2, 1, 0])          # size-1 axes dropped
permute("perm_merge", [4, 3, 2, 6], [2, 3, 0, 1])         # adjacent axes merged: one 2-D transpose
permute("perm_big", [33, 1030], [1, 0])
permute("perm_int32", [3, 4, 5], [2, 0, 1], torch.int32)
permute("perm_bf16", [4, 6, 8], [2, 1, 0], torch.bfloat16)
transpose("transpose_default", [2, 17, 33], -2, -1)
transpose("transpose_uint8", [17, 33], 0, 1, torch.uint8)
transpose("transpose_axes", [3, 4, 5, 6], 0, 2)

slice_("slice_box", [5, 6, 7], [1, 0, 2], [3, -1, 4])
slice_("slice_rows", [6, 5, 4], [2, 0, 0], [2, -1, -1])   # whole trailing axes: one block
slice_("slice_last", [4, 1001], [0, 17], [-1, 500])
slice_("slice_empty", [3, 4], [1, 4], [2, 0])
slice_("slice_int32", [7, 9], [3, 2], [4, 5], torch.int32)
slice_("slice_uint8", [2, 3, 17], [1, 1, 3], [1, 2, 13], torch.uint8)

concat("concat_axis1", [[2, 3, 4], [2, 5, 4], [2, 1, 4]], 1)
concat("concat_axis0", [[3, 4], [1, 4]], 0)
concat("concat_last", [[2, 3, 1], [2, 3, 7], [2, 3, 2]], -1)
concat("concat_long", [[2, 1000], [2, 33]], 1)
concat("concat_int32", [[2, 3], [2, 2]], 1, torch.int32)
concat("concat_uint8", [[4, 3], [1, 3], [2, 3]], 0, torch.uint8)

save_fixture("shape", tensors, cases)
