"""Contract tests over every sketch kind: products vs the dense matrix, adjoints, bits."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import fastnewton as fn
from fastnewton._threads import thread_limit
from fastnewton.linalg import Design
from fastnewton.sketch import (SKETCHES, SRHT, CountSketch, GaussianSketch, RowSampler,
                               SparseSign, make_sketch)


def _sampler(m, n, seed):
    p = np.random.default_rng(seed).random(n) ** 3  # non-uniform, deterministic in seed
    return RowSampler(m, n, probabilities=p, seed=seed)


#: Every kind, by a factory (sketch_size, n, seed) -> sketch.
KINDS = {
    "countsketch": lambda m, n, s: CountSketch(m, n, seed=s),
    "countsketch-noreorder": lambda m, n, s: CountSketch(m, n, seed=s, reorder=False),
    "sparse-sign": lambda m, n, s: SparseSign(m, n, seed=s),
    "sparse-sign-k3": lambda m, n, s: SparseSign(m, n, nnz_per_row=3, seed=s),
    "srht": lambda m, n, s: SRHT(m, n, seed=s),
    "gaussian": lambda m, n, s: GaussianSketch(m, n, seed=s),
    "sampling": _sampler,
}
ROW_SEPARABLE = ["countsketch", "countsketch-noreorder", "sparse-sign", "sparse-sign-k3",
                 "sampling"]


def _matrix(rng, n, d, fmt, dtype):
    A = sp.random_array((n, d), density=0.2, format="csr", dtype=np.float64, rng=rng)
    A = A.astype(dtype)
    if fmt == "dense":
        return A.toarray()
    if fmt == "csc":
        return A.tocsc()
    if fmt == "vector":
        return A.toarray()[:, 0]
    if fmt == "design":
        return Design(A)
    return A


def _dense(A):
    if isinstance(A, Design):
        A = A.A
    return (A.toarray() if sp.issparse(A) else np.asarray(A)).astype(np.float64)


@pytest.mark.parametrize("kind", list(KINDS))
def test_shape_dtype(kind, seed):
    S = KINDS[kind](9, 40, seed)
    assert S.shape == (9, 40) and S.dtype == np.float64
    assert S.to_dense().shape == (9, 40)
    op = S.as_linear_operator()
    assert op.shape == (9, 40) and op.dtype == np.float64
    A = np.ones((40, 3), dtype=np.float32)
    assert S.apply(A).shape == (9, 3) and S.apply(A).dtype == np.float64
    assert (S @ np.ones(40)).shape == (9,)
    assert (S.T @ np.ones(9)).shape == (40,)
    assert (S.T @ np.ones((9, 2))).shape == (40, 2)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fmt", ["csr", "csc", "dense", "vector", "design"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_apply_matches_dense(kind, fmt, dtype, weighted, rng, seed):
    n, d, m = 130, 6, 17
    S = KINDS[kind](m, n, seed)
    A = _matrix(rng, n, d, fmt, dtype)
    w = rng.random(n) * (rng.random(n) > 0.2) if weighted else None
    Ad = _dense(A)
    ref = S.to_dense() @ (Ad if w is None else np.sqrt(w).reshape((-1,) + (1,) * (Ad.ndim - 1)) * Ad)
    got = S.apply(A, row_weights=w)
    assert got.shape == ref.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    if w is None:
        np.testing.assert_array_equal(S @ A, got)
    out = np.full((m, d) if Ad.ndim == 2 else (m,), np.nan)
    assert S.apply(A, row_weights=w, out=out) is not None
    np.testing.assert_array_equal(out, got)  # the buffer is overwritten, not accumulated


@pytest.mark.parametrize("kind", list(KINDS))
def test_adjoint_identity_and_operator(kind, rng, seed):
    n, m = 150, 12
    S = KINDS[kind](m, n, seed)
    x, y = rng.standard_normal(n), rng.standard_normal(m)
    assert np.isclose((S @ x) @ y, x @ (S.T @ y), rtol=1e-12)
    D = S.to_dense()
    Y = rng.standard_normal((m, 3))
    np.testing.assert_allclose(S.T @ Y, D.T @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.rmatmat(Y), D.T @ Y, rtol=1e-12, atol=1e-12)
    op = S.as_linear_operator()
    X = rng.standard_normal((n, 2))
    np.testing.assert_allclose(op.matvec(x), D @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.matmat(X), D @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(y), D.T @ y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.H.matmat(Y), D.T @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.H.H.matvec(x), D @ x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(KINDS))
def test_same_seed_same_bits(kind, rng, seed):
    n, d, m = 3000, 5, 40
    A = _matrix(rng, n, d, "csr", np.float64)
    w = rng.random(n)
    a = KINDS[kind](m, n, seed).apply(A, row_weights=w)
    b = KINDS[kind](m, n, seed).apply(A, row_weights=w)
    c = KINDS[kind](m, n, seed + 1).apply(A, row_weights=w)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fmt", ["design", "dense"])
def test_thread_count_same_bits(kind, fmt, rng, seed):
    n, d, m = 20000, 24, 64
    A = _matrix(rng, n, d, fmt, np.float64)
    w = rng.random(n)
    S = KINDS[kind](m, n, seed)
    with thread_limit(1):
        one = S.apply(A, row_weights=w)
    with thread_limit(2):
        two = S.apply(A, row_weights=w)
    np.testing.assert_array_equal(one, two)


def _partition(rng, n, parts):
    cuts = np.sort(rng.choice(np.arange(1, n), parts - 1, replace=False))
    return np.concatenate([[0], cuts, [n]])


@pytest.mark.parametrize("kind", ROW_SEPARABLE)
@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_apply_rows_partition(kind, fmt, rng, seed):
    n, d, m = 4000, 7, 33
    S = KINDS[kind](m, n, seed)
    A = _matrix(rng, n, d, fmt, np.float64)
    w = rng.random(n)
    full = S.apply(A, row_weights=w)
    edges = _partition(rng, n, 5)
    acc = np.zeros((m, d))
    total = np.zeros((m, d))
    for r0, r1 in zip(edges[:-1], edges[1:]):
        part = S.apply_rows(A[r0:r1], int(r0), row_weights=w[r0:r1])
        np.testing.assert_allclose(part, S.to_dense()[:, r0:r1] @ (np.sqrt(w[r0:r1])[:, None]
                                                                   * _dense(A[r0:r1])),
                                   rtol=1e-12, atol=1e-12)
        total += part
        S.apply_rows(A[r0:r1], int(r0), row_weights=w[r0:r1], out=acc, accumulate=True)
    np.testing.assert_allclose(total, full, rtol=1e-12, atol=1e-12)
    # Accumulating the blocks in row order performs exactly the operations of S @ A.
    np.testing.assert_array_equal(acc, full)


def test_countsketch_reordered_layout_same_bits(rng, seed):
    n, d = 5000, 9
    A = _matrix(rng, n, d, "csr", np.float32)
    w = rng.random(n)
    S = CountSketch(50, n, seed=seed)
    design = Design(A)
    np.testing.assert_array_equal(S.apply(design, row_weights=w), S.apply(A, row_weights=w))
    # the scipy matrix got the Design cached for it, and the layout was built for that one
    from fastnewton.linalg import as_design
    assert S._layout is not None and S._layout[0]() is as_design(A) is not design
    S2 = CountSketch(50, n, seed=seed, reorder=False)
    np.testing.assert_array_equal(S2.apply(design, row_weights=w), S.apply(design, row_weights=w))


def test_countsketch_structure(seed):
    D = CountSketch(7, 300, seed=seed).to_dense()
    assert ((D != 0).sum(axis=0) == 1).all() and set(np.unique(D)) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("k", [1, 3, 8])
def test_sparse_sign_structure(k, seed):
    m, n = 24, 500
    S = SparseSign(m, n, nnz_per_row=k, seed=seed)
    D = S.to_dense()
    assert ((D != 0).sum(axis=0) == k).all()  # k distinct buckets per row of A
    np.testing.assert_allclose(np.abs(D[D != 0]), 1 / np.sqrt(k), rtol=0, atol=0)
    edges = (np.arange(k + 1) * m) // k
    for j in range(k):  # one entry in each of the k blocks of rows of S
        assert ((D[edges[j]:edges[j + 1]] != 0).sum(axis=0) == 1).all()
    np.testing.assert_allclose((D * D).sum(axis=0), 1.0, rtol=1e-14)
    assert SparseSign(5, 10, seed=0).nnz_per_row == 5  # default min(8, m)
    assert SparseSign(64, 10, seed=0).nnz_per_row == 8


@pytest.mark.parametrize("n", [64, 100])
def test_srht_matches_hadamard(n, seed):
    m = 10
    S = SRHT(m, n, seed=seed)
    N = S.padded_n
    assert N == 1 << int(np.ceil(np.log2(n)))
    H = scipy.linalg.hadamard(N)[:, :n]
    signs = np.sign(S.to_dense()[0] / H[S.rows[0]])  # D from the first row
    np.testing.assert_allclose(S.to_dense(), H[S.rows] * signs / np.sqrt(m), rtol=1e-14)
    assert len(np.unique(S.rows)) == m
    if n == N:  # rows of P H D are orthogonal: S S^T = (N / m) I
        np.testing.assert_allclose(S.to_dense() @ S.to_dense().T, N / m * np.eye(m), atol=1e-12)


@pytest.mark.parametrize("m", [3, 40, 600])
def test_srht_pruned_transform_matches_explicit_hadamard(rng, seed, m):
    """Dense and CSR input, chunked transform with skipped empty/padding chunks."""
    n, d = 1000, 37
    S = SRHT(m, n, seed=seed)
    H = scipy.linalg.hadamard(S.padded_n)[S.rows, :n] / np.sqrt(m)
    D = np.sign(S.to_dense()[0] / H[0]) / 1.0  # the random signs, from the first row
    A = sp.random(n, d, density=0.05, random_state=seed, format="lil")
    A[100:700] = 0.0  # whole chunks of rows without nonzeros
    A = sp.csr_array(A)
    ref = (H * D) @ A.toarray()
    np.testing.assert_allclose(S @ A, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S @ A.toarray(), ref, rtol=1e-12, atol=1e-12)
    w = rng.random(n)
    np.testing.assert_allclose(S.apply(A, row_weights=w), (H * D * np.sqrt(w)) @ A.toarray(),
                               rtol=1e-12, atol=1e-12)


def test_row_sampler_weights(rng, seed):
    n, m = 200, 50
    p = rng.random(n)
    S = RowSampler(m, n, probabilities=p, seed=seed)
    p = p / p.sum()
    assert np.all(np.diff(S.indices) >= 0)
    np.testing.assert_allclose(S.weights, 1 / (m * p[S.indices]), rtol=1e-14)
    A = rng.standard_normal((n, 3))
    np.testing.assert_allclose(S @ A, S.scales[:, None] * A[S.indices], rtol=1e-14)
    M = 200000
    diag = (RowSampler(M, n, probabilities=p, seed=seed).to_sparse() ** 2).sum(axis=0)
    counts = diag * M * p  # diag(S^T S)_i = count_i / (M p_i), with E[count_i] = M p_i
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    assert 0.5 * np.abs(counts / M - p).sum() < 0.03  # total variation to p (expected ~0.011)


def test_registry_and_make_sketch(seed):
    assert set(SKETCHES) == {"countsketch", "sparse-sign", "srht", "gaussian"}
    for name, cls in SKETCHES.items():
        S = make_sketch(name, 16, 100, seed=seed)
        assert isinstance(S, cls) and S.shape == (16, 100)
        assert cls.default_size(10**6, 50) == 400 and cls.default_size(100, 50) == 100
    S = SparseSign(16, 100, seed=seed)
    assert make_sketch(S, 16, 100) is S
    assert RowSampler.default_size(10**6, 50) == int(np.ceil(200 * np.log(51)))


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_sizes(kind):
    with pytest.raises(ValueError, match="sketch_size must be >= 1"):
        KINDS[kind](0, 10, 0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        KINDS[kind](3, 0, 0)
    with pytest.raises(TypeError, match="sketch_size must be an integer"):
        KINDS[kind](2.5, 10, 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_inputs(kind):
    S = KINDS[kind](4, 10, 0)
    with pytest.raises(ValueError, match="A has 11 rows but the sketch expects 10"):
        S.apply(np.ones((11, 2)))
    with pytest.raises(ValueError, match="row_weights contains NaN or infinite"):
        S.apply(np.ones((10, 2)), row_weights=np.r_[np.nan, np.ones(9)])
    with pytest.raises(ValueError, match="row_weights must be non-negative"):
        S.apply(np.ones((10, 2)), row_weights=-np.ones(10))
    with pytest.raises(ValueError, match="row_weights has 9 entries, expected 10"):
        S.apply(np.ones((10, 2)), row_weights=np.ones(9))
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float64 array of shape \(4, 2\)"):
        S.apply(np.ones((10, 2)), out=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Y must have 4 rows"):
        S.rmatmat(np.ones((5, 2)))


@pytest.mark.parametrize("kind", ROW_SEPARABLE)
def test_bad_apply_rows(kind):
    S = KINDS[kind](4, 10, 0)
    with pytest.raises(ValueError, match=r"rows 8..11 exceed the sketch's n = 10"):
        S.apply_rows(np.ones((3, 2)), 8)
    with pytest.raises(ValueError, match="row_start must be >= 0"):
        S.apply_rows(np.ones((3, 2)), -1)
    with pytest.raises(ValueError, match="accumulate=True needs an out buffer"):
        S.apply_rows(np.ones((3, 2)), 0, accumulate=True)


def test_bad_kind_specific():
    with pytest.raises(ValueError, match="sketch_size must be <= 10"):
        SRHT(11, 10)
    with pytest.raises(ValueError, match="nnz_per_row must be <= sketch_size = 4"):
        SparseSign(4, 10, nnz_per_row=5)
    with pytest.raises(ValueError, match="nnz_per_row must be >= 1"):
        SparseSign(4, 10, nnz_per_row=0)
    with pytest.raises(ValueError, match="probabilities must be non-negative"):
        RowSampler(4, 3, probabilities=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="probabilities must not be all zero"):
        RowSampler(4, 3, probabilities=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="probabilities contains NaN"):
        RowSampler(4, 3, probabilities=[0.0, np.inf, 0.0])
    with pytest.raises(ValueError, match="unknown sketch 'fast'; choose one of"):
        make_sketch("fast", 4, 10)
    with pytest.raises(ValueError, match="sketch has 10 columns but A has 11 rows"):
        make_sketch(CountSketch(4, 10), 4, 11)
    with pytest.raises(TypeError, match="sketch must be a name or a sketch object"):
        make_sketch(3, 4, 10)
    data = fn.datasets.make_regression(50, 3, seed=0)
    prob = fn.ExpRegression(data.A, data.b, data.w)
    with pytest.raises(ValueError, match="unknown sketch 'nope'"):
        fn.minimize(prob, method="sketch", sketch="nope")
    with pytest.raises(ValueError, match="sketch_size must be >= 1"):
        fn.minimize(prob, method="sample", sketch_size=0)
