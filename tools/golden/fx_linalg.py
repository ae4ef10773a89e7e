"""Fixture for kx.linalg: eigh, svd and covariance against torch.linalg in float64 on the float32
inputs kexue receives.

Vectors are defined up to sign; kexue flips each eigenvector (each column of U, with its row of Vh)
so that its entry of largest magnitude is positive, and the references here are flipped the same
way. Only vectors of distinct, nonzero eigen/singular values are stored ("vectors": the column
indices compared); the rest are checked through reconstructions in the test.

eigh cases: SPD matrices n = 1, 2, 17, 128 and a stack, an indefinite one, one read from its lower
triangle only (garbage above), repeated eigenvalues, the covariance of 20 samples in 64 dimensions
(rank 19), and n = 768 built by the test from an integer formula (int_spd below: exact in float32,
so both sides decompose the same matrix), of which the eigenvalues and 8 vectors are stored.
svd cases: tall, wide, square, rank 4 of [20, 12], a stack, [1, 1] and [1, 5].
covariance cases: float64 references for β = 1 (also N < d, a mean far above the spread, tiles and
slabs that do not divide d and N), β = 0 and β = 0.5, and N = 1."""
import torch

from common import generator, randn, save_fixture

g = generator(19)
tensors, cases = {}, []


def fix_signs(v, axis_len_dim=-2):
    """Each column of v (a [..., n, k] stack) flipped so that its entry of largest magnitude (the
    first on a tie) is positive."""
    idx = v.abs().argmax(dim=axis_len_dim, keepdim=True)  # argmax returns the first maximum
    sign = torch.where(v.gather(axis_len_dim, idx) < 0, -1.0, 1.0).to(v.dtype)
    return v * sign, sign


def sym32(a64):
    """A float64 matrix made exactly symmetric, then rounded to float32."""
    return ((a64 + a64.transpose(-1, -2)) / 2).float()


def spd(*shape_n, extra=3, shift=0.1):
    *batch, n = shape_n
    b = torch.randn(*batch, n, n + extra, generator=g, dtype=torch.float64)
    return sym32(b @ b.transpose(-1, -2) / (n + extra) + shift * torch.eye(n, dtype=torch.float64))


def add_eigh(name, a, vectors="all", store_a=True, extra=None):
    """vectors: "all", None, or a list of column indices whose eigenvalues are distinct."""
    w, v = torch.linalg.eigh(a.double())  # reads the lower triangle, as kexue
    v, _ = fix_signs(v)
    n = a.shape[-1]
    cols = list(range(n)) if vectors == "all" else (vectors or [])
    if store_a:
        tensors[f"{name}.a"] = a
    tensors[f"{name}.values"] = w.float()
    if cols:
        tensors[f"{name}.vectors"] = v[..., cols].float().contiguous()
    cases.append(dict({"op": "eigh", "name": name, "shape": list(a.shape), "vectorColumns": cols}, **(extra or {})))


def add_svd(name, a, rank=None):
    u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
    u, sign = fix_signs(u)
    vh = vh * sign.transpose(-1, -2)
    k = s.shape[-1]
    r = k if rank is None else rank
    tensors[f"{name}.a"] = a
    tensors[f"{name}.s"] = s.float()
    tensors[f"{name}.u"] = u[..., :r].float().contiguous()
    tensors[f"{name}.vh"] = vh[..., :r, :].float().contiguous()
    cases.append({"op": "svd", "name": name, "shape": list(a.shape), "rank": r})


def add_covariance(name, x, beta=1.0):
    x64 = x.double()
    mean = x64.mean(0)
    y = x64 - beta * mean
    cov = y.T @ y / x.shape[0]
    tensors[f"{name}.x"] = x
    tensors[f"{name}.mean"] = mean.float()
    tensors[f"{name}.cov"] = cov.float()
    cases.append({"op": "covariance", "name": name, "shape": list(x.shape), "beta": beta})


def int_hash(i, j):
    """The 32-bit hash of int_spd (the test's copy uses Math.imul and >>>)."""
    h = (i * 0x9E3779B1 + j * 0x85EBCA77) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return h


def int_spd(n):
    """B Bᵀ + n·I with B[i, j] = hash(i, j) % 17 - 8: integers below 2^24, exact in float32."""
    i = torch.arange(n, dtype=torch.int64).unsqueeze(1)
    j = torch.arange(n, dtype=torch.int64).unsqueeze(0)
    h = (i * 0x9E3779B1 + j * 0x85EBCA77) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    b = (h % 17 - 8).double()
    assert int(b[3, 5]) == int_hash(3, 5) % 17 - 8
    a = b @ b.T + n * torch.eye(n, dtype=torch.float64)
    assert a.abs().max() < 2**24
    return a.float()


# ---- eigh ------------------------------------------------------------------------------------------
for n in (1, 2, 17, 128):
    add_eigh(f"eigh_spd_{n}", spd(n))
add_eigh("eigh_stack_3x5", spd(3, 5))
add_eigh("eigh_indefinite_9", sym32(torch.randn(9, 9, generator=g, dtype=torch.float64)))
lower = sym32(torch.randn(6, 6, generator=g, dtype=torch.float64))
lower = torch.tril(lower) + torch.triu(torch.full((6, 6), 1e3), diagonal=1)  # only the lower triangle counts
add_eigh("eigh_lower_only_6", lower)
# repeated eigenvalues: Q diag(λ) Qᵀ, Q orthogonal; only the values and reconstructions are compared
q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
lam = torch.tensor([1.0, 1, 1, 2, 2, 5, 5, 5, 5, 7, 9, 9], dtype=torch.float64)
add_eigh("eigh_repeated_12", sym32(q @ torch.diag(lam) @ q.T), vectors=None)
add_eigh("eigh_identity_4", torch.eye(4) * 3, vectors=None)
# the covariance of 20 samples in 64 dimensions (1/N): rank 19, 45 eigenvalues ≈ 0
few = randn(g, 20, 64, scale=0.5) + 0.25
few64 = few.double() - few.double().mean(0)
add_eigh("eigh_rank_deficient_cov", sym32(few64.T @ few64 / 20), vectors=list(range(64 - 19, 64)),
         extra={"rank": 19, "samples": "eigh_rank_deficient_cov.x"})
tensors["eigh_rank_deficient_cov.x"] = few
# n = 768 from the integer formula: eigenvalues, the 4 smallest and the 4 largest vectors
big = int_spd(768)
add_eigh("eigh_int_spd_768", big, vectors=[0, 1, 2, 3, 764, 765, 766, 767], store_a=False,
         extra={"formula": "int_spd"})

# ---- svd -------------------------------------------------------------------------------------------
add_svd("svd_tall_40x7", randn(g, 40, 7))
add_svd("svd_wide_6x30", randn(g, 6, 30))
add_svd("svd_square_16", randn(g, 16, 16))
add_svd("svd_rank4_20x12", (randn(g, 20, 4) @ randn(g, 4, 12)).contiguous(), rank=4)
add_svd("svd_stack_2x5x3", randn(g, 2, 5, 3))
add_svd("svd_1x1", torch.tensor([[-3.0]]))
add_svd("svd_row_1x5", randn(g, 1, 5))

# ---- covariance ------------------------------------------------------------------------------------
add_covariance("cov_500x64", randn(g, 500, 64) * torch.linspace(0.1, 3, 64) + torch.linspace(-2, 2, 64))
add_covariance("cov_few_20x64", few)
add_covariance("cov_offset_1500x32", randn(g, 1500, 32, scale=0.5) + 1000)
add_covariance("cov_tiles_1100x140", randn(g, 1100, 140) + 0.5)
add_covariance("cov_beta0_300x33", randn(g, 300, 33) + 1.5, beta=0.0)
add_covariance("cov_beta_half_300x33", randn(g, 300, 33) - 0.7, beta=0.5)
add_covariance("cov_one_row_1x5", randn(g, 1, 5))

save_fixture("linalg", tensors, cases)
