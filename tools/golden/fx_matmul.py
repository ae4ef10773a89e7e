"""Fixture for matmul: products in float32 (sizes 1..1000, batch broadcasting, folded batches,
all four transpose combinations), with and without a bias row, half dtypes against the float32
product of the half-rounded inputs, and PyTorch's gradients of loss = sum(y * w) for a fixed
random w."""
import torch

from common import generator, randn, save_fixture

g = generator(7)
tensors, cases = {}, []


def stored(shape, trans):
    """The stored shape of an operand whose logical last two axes are `shape[-2:]`."""
    return list(shape[:-2]) + ([shape[-1], shape[-2]] if trans else [shape[-2], shape[-1]])


def op(t, trans):
    return t.transpose(-1, -2) if trans else t


def case(name, a_shape, b_shape, trans_a=False, trans_b=False, grads=True, bias=False):
    """a_shape/b_shape are the logical shapes [..., m, k] and [..., k, n]; bias adds a row [n]."""
    a = randn(g, *stored(a_shape, trans_a)).requires_grad_(grads)
    b = randn(g, *stored(b_shape, trans_b)).requires_grad_(grads)
    y = torch.matmul(op(a, trans_a), op(b, trans_b))
    if bias:
        c = randn(g, y.shape[-1]).requires_grad_(grads)
        y = y + c
        tensors[f"{name}.bias"] = c.detach()
    tensors[f"{name}.a"], tensors[f"{name}.b"], tensors[f"{name}.y"] = a.detach(), b.detach(), y.detach()
    if grads:
        w = randn(g, *y.shape)
        (y * w).sum().backward()
        tensors[f"{name}.w"], tensors[f"{name}.da"], tensors[f"{name}.db"] = w, a.grad, b.grad
        if bias:
            tensors[f"{name}.dbias"] = c.grad
    cases.append({"name": name, "transA": trans_a, "transB": trans_b, "grads": grads, "bias": bias})


case("mm_1x1x1", [1, 1], [1, 1])
case("mm_3x17x5", [3, 17], [17, 5])
case("mm_64x1000x33", [64, 1000], [1000, 33], grads=False)
case("mm_17x1001x3", [17, 1001], [1001, 3])
case("batch_bcast", [2, 3, 4, 5], [3, 5, 6])
case("batch_ones", [2, 1, 4, 5], [1, 3, 5, 6])
case("fold", [4, 7, 5], [5, 3])
case("fold_big", [3, 40, 64], [64, 48], grads=False)
case("many_small", [64, 3, 4], [64, 4, 2])
for ta in (False, True):
    for tb in (False, True):
        suffix = f"{'T' if ta else 'N'}{'T' if tb else 'N'}"
        case(f"trans_{suffix}", [5, 7], [7, 3], ta, tb)
        case(f"trans_batch_{suffix}", [2, 1, 5, 7], [3, 7, 3], ta, tb)
        case(f"trans_shared_{suffix}", [3, 4, 6], [6, 5], ta, tb)
        case(f"bias_batch_{suffix}", [2, 1, 5, 7], [3, 7, 3], ta, tb, bias=True)
# A Linear layer's product (x · Wᵀ + b, W shared by the batch) and a large one.
case("bias_linear", [4, 6, 16], [16, 12], trans_b=True, bias=True)
case("bias_linear_big", [2, 64, 256], [256, 1000], trans_b=True, grads=False, bias=True)

# Half dtypes: inputs rounded to the half type; the reference is the float32 product of those.
for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
    for name, a_shape, b_shape, ta, tb in (
        (f"half_{tag}", [2, 33, 70], [70, 19], False, False),
        (f"half_{tag}_trans", [3, 9, 40], [3, 40, 11], True, True),
    ):
        a = randn(g, *stored(a_shape, ta)).to(dt)
        b = randn(g, *stored(b_shape, tb)).to(dt)
        y = torch.matmul(op(a.float(), ta), op(b.float(), tb))
        tensors[f"{name}.a"], tensors[f"{name}.b"], tensors[f"{name}.y"] = a, b, y
        cases.append({"name": name, "transA": ta, "transB": tb, "grads": False, "half": True, "bias": False})
    # with a bias: the float32 sum of the product and the half-rounded bias, rounded once
    a = randn(g, 3, 9, 40).to(dt)
    b = randn(g, 11, 40).to(dt)
    c = randn(g, 11).to(dt)
    name = f"half_{tag}_bias"
    tensors[f"{name}.a"], tensors[f"{name}.b"], tensors[f"{name}.bias"] = a, b, c
    tensors[f"{name}.y"] = torch.matmul(a.float(), b.float().t()) + c.float()
    cases.append({"name": name, "transA": False, "transB": True, "grads": False, "half": True, "bias": True})

# Parts of 64 rows and more whose b is not stored transposed: on CPUs without AVX-512 these run on
# OpenBLAS rather than oneDNN (ops/matmul), the gradients' aᵀ·dy too.
case("rows_NN_bias", [256, 32], [32, 64], bias=True)
case("rows_TN", [200, 40], [40, 48], trans_a=True)

save_fixture("matmul", tensors, cases)
