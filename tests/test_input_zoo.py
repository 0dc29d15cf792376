"""Every valid scipy/numpy input x every public entry point that takes a design matrix.

Each input kind (every scipy sparse format as matrix and as array, canonical or not,
int64 indices, float32 values, dense C/F order, read-only, memory-mapped) is compared
with its canonical form (scipy's ``tocsr()`` + ``sum_duplicates()``, or a C-ordered
float64 array): the canonical arrays fastnewton builds are scipy's, so every result
must be bitwise the same. The caller's buffers must come back unchanged, bit for bit.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnewton as fn
from fastnewton._validation import check_matrix
from fastnewton.hessian import (DiagLowRank, HessianOperator, SketchPreconditioner, gram,
                                sketched_gram)
from fastnewton.linalg import Design, as_design, clear_design_cache, lstsq, pcg
from fastnewton.sketch import SRHT, CountSketch, GaussianSketch, SparseSign, leverage_scores

N, D = 90, 6
FORMATS = ("csr", "csc", "coo", "bsr", "lil", "dok", "dia")
_CLS = {(fmt, kind): getattr(sp, f"{fmt}_{kind}") for fmt in FORMATS for kind in ("matrix", "array")}


# -- the inputs -------------------------------------------------------------------------

def _base(rng):
    """A canonical float64 CSR (n x d) with an empty row and rows of up to d entries."""
    A = sp.random_array((N, D), density=0.45, format="csr", rng=rng,
                        data_sampler=lambda size: rng.uniform(-1, 1, size))
    A = A.tolil()
    A[3, :] = 0.0
    A[7, :] = rng.uniform(-1, 1, D)
    A = sp.csr_array(A)
    A.sum_duplicates()
    return A


def _scrambled(A, rng, cls=sp.csr_matrix, dup_every=3):
    """The same matrix with each row's entries shuffled and every ``dup_every``-th entry
    split into two duplicates (v = a + (v - a)), built from raw arrays as users do."""
    indptr, indices, data = [0], [], []
    for i in range(A.shape[0]):
        lo, hi = A.indptr[i], A.indptr[i + 1]
        cols, vals = list(A.indices[lo:hi]), list(A.data[lo:hi])
        for k in range(0, len(cols), dup_every):
            part = 0.3 * vals[k]
            cols.append(cols[k])
            vals.append(vals[k] - part)
            vals[k] = part
        perm = rng.permutation(len(cols))
        indices += [cols[p] for p in perm]
        data += [vals[p] for p in perm]
        indptr.append(len(indices))
    M = cls((np.array(data), np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int32)),
            shape=A.shape)
    assert not M.has_canonical_format
    return M


def _readonly(M):
    for name in ("data", "indices", "indptr"):
        arr = getattr(M, name).copy()
        arr.flags.writeable = False
        setattr(M, name, arr)
    return M


def _memmap(arr, path):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=arr.dtype, shape=arr.shape,
                                   fortran_order=np.isfortran(arr))
    mm[...] = arr
    mm.flush()
    return np.load(path, mmap_mode="r")


def _kinds():
    kinds = {f"{fmt}_{kind}": (lambda A, rng, tmp, c=_CLS[fmt, kind], f=fmt: c(A.asformat(f)))
             for fmt in FORMATS for kind in ("matrix", "array")}
    kinds.update({
        "csr_unsorted_dups": lambda A, rng, tmp: _scrambled(A, rng),
        "csr_array_unsorted_dups": lambda A, rng, tmp: _scrambled(A, rng, sp.csr_array),
        "csr_unsorted_dups_int64_readonly": lambda A, rng, tmp: _readonly(_int64(_scrambled(A, rng))),
        "csr_unsorted_float32": lambda A, rng, tmp: _scrambled(A, rng).astype(np.float32),
        "csc_unsorted_dups": lambda A, rng, tmp: sp.csc_matrix(_scrambled(sp.csr_array(A.T), rng).T),
        "coo_dups": lambda A, rng, tmp: sp.coo_array(_scrambled(A, rng)),
        "csr_times_diags": lambda A, rng, tmp: sp.csr_matrix(A) @ sp.diags(rng.uniform(0.5, 2, D)),
        "csr_array_times_diags": lambda A, rng, tmp: A @ sp.diags_array(rng.uniform(0.5, 2, D)),
        "csr_int64": lambda A, rng, tmp: _int64(sp.csr_array(A.copy())),
        "csr_float32": lambda A, rng, tmp: A.astype(np.float32),
        "csr_int_values": lambda A, rng, tmp: sp.csr_array((np.round(4 * A.data).astype(np.int64),
                                                             A.indices, A.indptr), shape=A.shape),
        "csr_readonly": lambda A, rng, tmp: _readonly(sp.csr_matrix(A.copy())),
        "csr_memmap": lambda A, rng, tmp: sp.csr_array(
            (_memmap(A.data, tmp / "data.npy"), _memmap(A.indices, tmp / "indices.npy"),
             _memmap(A.indptr, tmp / "indptr.npy")), shape=A.shape),
        "dense_c": lambda A, rng, tmp: A.toarray(),
        "dense_f": lambda A, rng, tmp: np.asfortranarray(A.toarray()),
        "dense_float32_f": lambda A, rng, tmp: np.asfortranarray(A.toarray(), dtype=np.float32),
        "dense_readonly": lambda A, rng, tmp: _frozen(A.toarray()),
        "dense_memmap": lambda A, rng, tmp: _memmap(A.toarray(), tmp / "dense.npy"),
        "dense_memmap_f": lambda A, rng, tmp: _memmap(np.asfortranarray(A.toarray()), tmp / "f.npy"),
        "np_matrix": lambda A, rng, tmp: np.asmatrix(A.toarray()),
    })
    return kinds


def _int64(M):
    M.indices, M.indptr = M.indices.astype(np.int64), M.indptr.astype(np.int64)
    return M


def _frozen(arr):
    arr.flags.writeable = False
    return arr


KINDS = _kinds()


def _canonical(M):
    """The reference: scipy's canonical CSR of M (values float32 kept, else float64), or a
    C-ordered float64 array."""
    if not sp.issparse(M):
        return np.ascontiguousarray(np.asarray(M), dtype=np.float64)
    R = sp.csr_array(M.tocsr(copy=True))
    R.sum_duplicates()
    dtype = np.float32 if R.dtype == np.float32 else np.float64
    R = sp.csr_array((R.data.astype(dtype), R.indices.copy(), R.indptr.copy()), shape=R.shape)
    assert R.has_canonical_format
    return R


def _buffers(M):
    """Copies of everything the caller owns, to check nothing was written."""
    if not sp.issparse(M):
        return [np.array(M, copy=True)]
    if M.format in ("lil", "dok"):
        return [M.toarray(), sorted(M.items()) if M.format == "dok" else M.rows.copy()]
    if M.format == "coo":
        return [M.data.copy(), *(c.copy() for c in M.coords)]
    if M.format == "dia":
        return [M.data.copy(), M.offsets.copy()]
    return [M.data.copy(), M.indices.copy(), M.indptr.copy()]


def _assert_unchanged(before, M):
    after = _buffers(M)
    for a, b in zip(before, after):
        if isinstance(a, np.ndarray) and a.dtype != object:
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        else:
            assert repr(a) == repr(b)


@pytest.fixture
def zoo_case(request, rng, tmp_path):
    """(input of the given kind, its canonical reference, the base matrix)."""
    A = _base(rng)
    M = KINDS[request.param](A, rng, tmp_path)
    return M, _canonical(M), A


# -- the entry points ---------------------------------------------------------------------

def _vectors():
    g = np.random.default_rng(7)  # fixed: both calls of a comparison need the same ones
    return {"b": g.uniform(0.5, 1.5, N), "w": g.uniform(0.5, 1.0, N), "x": g.uniform(-0.3, 0.3, D),
            "beta": g.uniform(0.1, 2.0, N), "U": g.standard_normal((N, 2)), "y": g.standard_normal(N)}


def _quiet(fun):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fun()


def _exp_minimize(M, v):
    prob = fn.ExpRegression(M, v["b"], v["w"], lam=1e-2)
    out = [prob.fun(v["x"]), prob.jac(v["x"]), prob.hessp(v["x"], v["x"])]
    for method in ("exact", "sketch"):
        res = _quiet(lambda: fn.minimize(prob, method=method, maxiter=4, seed=0))
        out.append(res.x)
    return out


def _softmax(M, v):
    prob = fn.SoftmaxRegression(M, v["b"] / v["b"].sum(), lam=1e-2)
    res = _quiet(lambda: fn.minimize(prob, method="exact", maxiter=3, seed=0))
    return [prob.fun(v["x"]), prob.jac(v["x"]), res.x]


def _sketches(M, v):
    out = []
    for S in (CountSketch(2 * D, N, seed=1), SparseSign(2 * D, N, seed=1),
              SRHT(2 * D, N, seed=1), GaussianSketch(2 * D, N, seed=1)):
        first = S.apply(M, row_weights=v["w"])
        again = S.apply(M, row_weights=v["w"])  # a second call reuses the cached layouts
        np.testing.assert_array_equal(first, again)
        out += [first, S @ M]
    return out


def _grams(M, v):
    parts = DiagLowRank(v["beta"], v["U"], np.eye(2))
    return [gram(M, parts, ridge=0.1),
            sketched_gram(M, DiagLowRank(v["beta"]), CountSketch(3 * D, N, seed=2))]


def _operators(M, v):
    parts = DiagLowRank(v["beta"], v["U"], np.eye(2))
    H = HessianOperator(M, parts, ridge=0.1)
    P = SketchPreconditioner(M, DiagLowRank(v["beta"]), "countsketch", ridge=0.1, seed=3)
    res = pcg(H, v["x"], M=P, rtol=1e-12)
    return [H @ v["x"], H.matmat(np.eye(D)), P @ v["x"], res.x]


def _least_squares(M, v):
    return [lstsq(M, v["y"], seed=4).x,
            leverage_scores(M, method="exact"), leverage_scores(M, seed=5, row_weights=v["w"])]


def _families(M, v):
    b = v["b"] / v["b"].sum()
    out = []
    cp = fn.CopyrightRegression(M, b, M, b, gamma=1e-3, w=0.5)
    out += [cp.fun(np.zeros(D)), cp.jac(v["x"])]
    ms = fn.MultiSoftmaxRegression(M, M, np.full((N, N), 1.0 / N), lam=1e-3)
    xm = np.tile(v["x"], D) * 0.1
    out += [ms.fun(xm), ms.jac(xm)]
    ak = fn.AttentionKernelRegression(M, v["x"], power=1, kind="gram")
    out += [ak.fun(v["x"]), ak.jac(v["x"])]
    return out


def _sklearn(M, v):
    from fastnewton.sklearn import ExpRegressor

    est = _quiet(lambda: ExpRegressor(w=0.5, max_iter=5).fit(M, v["b"]))
    return [est.coef_, est.predict(M)]


def _distributed_block(M, v):
    from fastnewton.distributed._blocks import build_block

    block = build_block({"A": M, "b": v["b"], "w": v["w"]}, 0, "exp", {})
    return [block.product(v["x"]), block.partial_sketch(("countsketch", 2 * D, N, 6), v["beta"]),
            block.partial_sketch(("sparse-sign", 2 * D, N, 6), v["beta"])]


ENTRY_POINTS = {"exp_minimize": _exp_minimize, "softmax": _softmax, "sketches": _sketches,
                "grams": _grams, "operators_pcg": _operators, "lstsq_leverage": _least_squares,
                "families": _families, "sklearn": _sklearn, "distributed_block": _distributed_block}


def _flat(results):
    return [np.asarray(r, dtype=np.float64) for r in results]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("zoo_case", list(KINDS), indirect=True)
def test_every_input_kind_gives_the_canonical_result(zoo_case, entry):
    M, ref, _ = zoo_case
    v = _vectors()
    before = _buffers(M)
    got = _flat(ENTRY_POINTS[entry](M, v))
    _assert_unchanged(before, M)
    expect = _flat(ENTRY_POINTS[entry](ref, v))
    assert len(got) == len(expect)
    for g, e in zip(got, expect):
        np.testing.assert_array_equal(g, e)  # same canonical arrays: the same bits


@pytest.mark.parametrize("zoo_case", list(KINDS), indirect=True)
def test_canonical_form_is_scipys(zoo_case):
    """check_matrix builds exactly scipy's canonical arrays, and no copy of a canonical CSR."""
    M, ref, _ = zoo_case
    before = _buffers(M)
    C = check_matrix(M)
    _assert_unchanged(before, M)
    if sp.issparse(ref):
        assert sp.issparse(C) and C.format == "csr" and C.dtype == ref.dtype
        np.testing.assert_array_equal(C.indptr, ref.indptr)
        np.testing.assert_array_equal(C.indices, ref.indices)
        np.testing.assert_array_equal(C.data, ref.data)
        if M.format == "csr" and M.has_canonical_format and M.dtype in (np.float32, np.float64):
            assert np.shares_memory(C.data, M.data) and np.shares_memory(C.indices, M.indices)
    else:
        assert isinstance(C, np.ndarray) and C.flags.c_contiguous
        np.testing.assert_array_equal(np.asarray(C, dtype=np.float64), ref)


@pytest.mark.parametrize("n", [1, 5000, 40_000])
def test_canonical_detection_over_many_chunks(rng, n):
    """The parallel structure check splits the nonzeros and the rows into chunks: a
    canonical CSR is recognised (and wrapped, not copied) at any size, and one unsorted
    pair anywhere, also at a row or chunk boundary, is found."""
    d, k = 50, 7
    cols = np.sort(rng.choice(d, size=(n, k), replace=True), axis=1)
    cols += np.arange(k)  # strictly increasing within each row
    A = sp.csr_array((rng.standard_normal(n * k), cols.ravel(), np.arange(0, n * k + 1, k)),
                     shape=(n, d + k))
    C = check_matrix(A)
    assert np.shares_memory(C.data, A.data) and np.shares_memory(C.indices, A.indices)
    for pos in {1, k - 1, k, (n * k) // 2, n * k - 1} - {0}:
        if pos >= n * k or pos % k == 0:  # a row start: the pair straddles two rows
            continue
        B = A.copy()
        B.indices[pos], B.indices[pos - 1] = B.indices[pos - 1], B.indices[pos]
        C = check_matrix(B)
        assert not np.shares_memory(C.data, B.data)
        R = B.copy()
        R.sum_duplicates()
        np.testing.assert_array_equal(C.indices, R.indices)
        np.testing.assert_array_equal(C.data, R.data)


def test_duplicates_summed_in_scipys_order(rng):
    """Three or more duplicates of one entry (order of summation matters for the bits) in
    rows longer than a few entries: the canonical data are scipy's ``sum_duplicates``'."""
    n, d = 300, 12
    rows = np.repeat(np.arange(n), 14)
    cols = rng.integers(0, d // 2, rows.size)  # many repeats per row
    vals = rng.standard_normal(rows.size) * 10.0 ** rng.integers(-8, 8, rows.size)
    M = sp.csr_matrix((vals, cols, np.arange(0, rows.size + 1, 14)), shape=(n, d))
    R = M.copy()
    R.sum_duplicates()
    C = check_matrix(M)
    np.testing.assert_array_equal(C.indices, R.indices)
    np.testing.assert_array_equal(C.data, R.data)
    # long rows (the sort path), each entry twice: rows 0-19 shuffled, 20-39 sorted
    L = sp.random_array((20, 400), density=0.5, format="csr", rng=rng)
    perm = np.concatenate([L.indptr[i] + rng.permutation(L.indptr[i + 1] - L.indptr[i])
                           for i in range(20)])
    S = sp.csr_array((np.r_[L.data[perm], L.data], np.r_[L.indices[perm], L.indices],
                      np.r_[L.indptr, L.indptr[-1] + L.indptr[1:]]), shape=(40, 400))
    R = S.copy()
    R.sum_duplicates()
    C = check_matrix(S)
    np.testing.assert_array_equal(C.indices, R.indices)
    np.testing.assert_array_equal(C.data, R.data)


def test_cli_solve_on_a_noncanonical_npz(tmp_path, rng):
    from fastnewton.cli import main

    A = _base(rng)
    b = rng.uniform(0.5, 1.5, N)
    for label, M in (("raw", _scrambled(A, rng)), ("diags", sp.csr_matrix(A) @ sp.diags(
            rng.uniform(0.5, 2, D)))):
        sp.save_npz(tmp_path / f"{label}.npz", M, compressed=False)
        np.save(tmp_path / "b.npy", b)
        out = tmp_path / f"{label}_x.npz"
        code = main(["solve", "--param", f"A={tmp_path / (label + '.npz')}", "--param",
                     f"b={tmp_path / 'b.npy'}", "--param", "w=2", "--param", "lam=0.01",
                     "--method", "exact", "--out", str(out), "--quiet"])
        assert code == 0
        ref = _quiet(lambda: fn.minimize(fn.ExpRegression(_canonical(M), b, 2.0, lam=0.01),
                                         method="exact"))
        with np.load(out) as res:
            np.testing.assert_array_equal(res["x"], ref.x)


# -- invalid structure is still refused ----------------------------------------------------

def _raw(data, indices, indptr, shape=(3, 4)):
    M = sp.csr_matrix((np.ones(3), np.array([0, 1, 2]), np.array([0, 1, 2, 3])), shape=shape)
    M.data, M.indices, M.indptr = np.asarray(data, float), np.asarray(indices), np.asarray(indptr)
    return M


@pytest.mark.parametrize("M, match", [
    (_raw([1, 2, 3], [3, 0, 4], [0, 2, 3, 3]), r"A\.indices \(CSR\) has entries outside \[0, 4\)"),
    (_raw([1, 2, 3], [3, 0, -1], [0, 2, 3, 3]), r"outside \[0, 4\): min -1"),
    (_raw([1, 2, 3], [3, 0, 1], [0, 2, 1, 3]), r"A\.indptr \(CSR\) is not monotone"),
    (_raw([1, 2, 3], [3, 0, 1], [0, 2, 3, 7]), r"A\.indptr \(CSR\) ends at 7 but"),
    (_raw([1, 2, 3], [3, 0, 1], [0, 2, 3]), r"A\.indptr \(CSR\) has 3 entries, expected 4"),
    (_raw([1, 2], [3, 0, 1], [0, 2, 3, 3]), r"indices/data hold only 2 entries"),
    (_raw([1, np.nan, 3], [3, 3, 1], [0, 2, 3, 3]), "A contains NaN or infinite values"),
    (_raw([1, np.inf, 3], [3, 0, 1], [0, 2, 3, 3]), "A contains NaN or infinite values"),
])
def test_invalid_structure_is_refused_with_unsorted_input(M, match):
    """Unsorted rows (row 0 above) are fine; what is broken is still named."""
    with pytest.raises(ValueError, match=match):
        check_matrix(M)
    with pytest.raises(ValueError, match=match):
        CountSketch(2, 3, seed=0).apply(M)


def test_unsorted_with_duplicates_is_accepted_everywhere_it_used_to_fail():
    M = _raw([1.0, 2.0, 3.0, 4.0], [2, 0, 2, 1], [0, 3, 4, 4])
    R = M.copy()
    R.sum_duplicates()
    np.testing.assert_array_equal(check_matrix(M).toarray(), R.toarray())
    assert check_matrix(M)[0, 2] == 4.0  # 1 + 3, summed


# -- the cache -------------------------------------------------------------------------------

def test_cache_same_object_same_design(rng):
    clear_design_cache()
    A = _scrambled(_base(rng), rng)
    D1 = as_design(A)
    assert as_design(A) is D1 and D1.cached
    assert as_design(A, cache=False) is not D1
    B = sp.csr_matrix(A)  # another object on the same buffers: its own entry
    assert as_design(B) is not D1
    clear_design_cache()
    assert as_design(A) is not D1


def test_cache_misses_when_the_matrix_changes(rng):
    A = sp.csr_array(_base(rng))
    D1 = as_design(A)
    assert D1.A.data is A.data  # canonical: wrapped, not copied
    A.data = A.data * 2.0  # a new buffer
    D2 = as_design(A)
    assert D2 is not D1 and np.array_equal(D2.A.data, A.data)
    A.resize((N + 1, D))  # a new shape
    D3 = as_design(A)
    assert D3 is not D2 and D3.shape == (N + 1, D)
    C = _scrambled(_base(rng), rng)
    E1 = as_design(C)
    C.sum_duplicates()  # in place; scipy assigns new (pruned) arrays
    assert as_design(C) is not E1
    # the documented caveat: values changed inside the same buffers are not seen
    F = sp.csr_array(_base(rng))
    F1 = as_design(F)
    assert as_design(F) is F1
    F.data[:] = F.data * 3  # same buffer: the cached Design is reused; clear it
    clear_design_cache()
    np.testing.assert_array_equal(as_design(F).A.data, F.data)


def test_cache_does_not_keep_the_matrix_alive(rng):
    import gc
    import weakref

    A = _scrambled(_base(rng), rng)
    S = CountSketch(2 * D, N, seed=0)
    S.apply(A, row_weights=np.ones(N))
    design = as_design(A)
    assert S._layout is not None and S._layout[0]() is design
    refs = [weakref.ref(A), weakref.ref(design), weakref.ref(A.data)]
    del A, design
    gc.collect()
    assert all(r() is None for r in refs)
    assert S._layout is None  # the sketch dropped its layout of the collected matrix


def test_cache_is_bounded(rng):
    from fastnewton.linalg import _design

    clear_design_cache()
    mats = [sp.csr_array(_base(rng)) for _ in range(_design.DESIGN_CACHE_SIZE + 3)]
    designs = [as_design(M) for M in mats]
    assert len(_design._cache) == _design.DESIGN_CACHE_SIZE
    assert as_design(mats[-1]) is designs[-1] and as_design(mats[0]) is not designs[0]


def test_dense_and_mutable_formats_are_not_cached(rng):
    A = _base(rng)
    X = A.toarray()
    assert as_design(X) is not as_design(X)
    L = A.tolil()
    assert as_design(L) is not as_design(L)
    assert isinstance(as_design(X), Design)
