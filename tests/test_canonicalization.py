"""Canonicalization of non-canonical CSR input (unsorted rows, duplicates) by
``check_matrix``: the two passes of ``fastnewton.linalg._canon_kernels`` (merge networks for
short rows, a general sort for long ones) against scipy's ``sum_duplicates`` bit for bit,
at every row length and kind, for very wide matrices, on any number of threads.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastnewton._validation import check_matrix


def _bits(a):
    """The bytes of an array: equality of values, also of -0.0 and 0.0, bit for bit."""
    return np.ascontiguousarray(a).view(np.uint8)


def _rows_of_every_length(rng, d, longest, per_length=4):
    """(indptr, indices) with ``per_length`` rows of each length 0..longest: shuffled
    distinct, shuffled with duplicates (any number where the row has at most 16 entries,
    at most two of an index in longer rows), sorted, strictly decreasing."""
    rows = []
    for m in range(longest + 1):
        for kind in range(per_length):
            if kind == 1 and m >= 2:
                if m <= 16:
                    cols = rng.integers(0, max(1, m // 3), m)
                else:
                    distinct = rng.choice(d, size=m - m // 3, replace=False)
                    cols = np.concatenate([distinct, distinct[:m // 3]])
                rng.shuffle(cols)
            else:
                cols = rng.choice(d, size=m, replace=False)
                cols = {0: rng.permutation(cols), 2: np.sort(cols)}.get(kind, np.sort(cols)[::-1])
            rows.append(cols)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return indptr, np.concatenate(rows)


@pytest.mark.parametrize("idx_dtype, dtype", [(np.int32, np.float64), (np.int64, np.float32)])
def test_canonicalization_at_every_row_length(rng, idx_dtype, dtype):
    """Rows of every length from 0 to beyond the longest that the sorting networks take,
    sorted, reversed, shuffled, with duplicates, in one matrix: check_matrix builds
    scipy's canonical arrays bit for bit (explicit zeros kept), in the given dtypes,
    without touching the caller's arrays. (Rows of more than 16 entries repeat an index
    at most twice: scipy sorts those rows unstably, so it sums 3 or more duplicates in
    an order of its own; two are summed exactly in either order.)"""
    from fastnewton.linalg._canon_kernels import SMALL_ROW

    d = 300
    indptr, indices = _rows_of_every_length(rng, d, SMALL_ROW + 20)
    data = (rng.standard_normal(indices.size) * 10.0 ** rng.integers(-6, 6, indices.size))
    data[rng.random(indices.size) < 0.05] = 0.0
    data[rng.random(indices.size) < 0.02] = -0.0
    M = sp.csr_array((data.astype(dtype), indices.astype(idx_dtype), indptr.astype(idx_dtype)),
                     shape=(indptr.size - 1, d))
    assert not M.has_canonical_format
    before = [a.copy() for a in (M.indptr, M.indices, M.data)]
    R = M.copy()
    R.sum_duplicates()
    C = check_matrix(M)
    assert C.indices.dtype == idx_dtype and C.data.dtype == dtype and C.has_canonical_format
    for got, want in ((C.indptr, R.indptr), (C.indices, R.indices), (C.data, R.data)):
        np.testing.assert_array_equal(_bits(got), _bits(want))
    for a, b in zip(before, (M.indptr, M.indices, M.data)):
        np.testing.assert_array_equal(_bits(a), _bits(b))


def test_three_or_more_duplicates_in_long_rows_summed_left_to_right(rng):
    """Where scipy's own order is not stable (rows of more than 16 entries), duplicates
    are summed in their original order, left to right (a stable sort, then scipy's
    summation), in every row length class."""
    d = 7
    lengths = np.array([17, 20, 33, 64, 100, 128, 129, 200] * 5)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = rng.integers(0, d, indptr[-1])
    data = rng.standard_normal(indptr[-1]) * 10.0 ** rng.integers(-8, 8, indptr[-1])
    C = check_matrix(sp.csr_array((data, indices, indptr), shape=(lengths.size, d)))
    for i in range(lengths.size):
        cols, vals = indices[indptr[i]:indptr[i + 1]], data[indptr[i]:indptr[i + 1]]
        want = {}
        for j, v in zip(cols, vals):  # original order
            want[j] = want[j] + v if j in want else v
        keys = sorted(want)
        np.testing.assert_array_equal(C.indices[C.indptr[i]:C.indptr[i + 1]], keys)
        np.testing.assert_array_equal(_bits(C.data[C.indptr[i]:C.indptr[i + 1]]),
                                      _bits(np.array([want[j] for j in keys])))


@pytest.mark.parametrize("d", [2**24 + 3, 2**40, 2**60])
def test_canonicalization_of_very_wide_matrices(rng, d):
    """Column counts past what an int32 sort key holds (index * 2**7 + position), and
    past what any sort key holds (rows then sorted by the general path)."""
    from fastnewton.linalg._canon_kernels import SMALL_ROW

    indptr, small = _rows_of_every_length(rng, 200, SMALL_ROW + 3, per_length=2)
    cols = np.sort(rng.choice(d - 1, size=200, replace=False))
    cols[-1] = d - 1  # the largest index (cols increasing: the rows keep their kind)
    indices = cols[small].astype(np.int64)
    M = sp.csr_array((rng.standard_normal(indices.size), indices, indptr), shape=(indptr.size - 1, d))
    R = M.copy()
    R.sum_duplicates()
    C = check_matrix(M)
    for got, want in ((C.indptr, R.indptr), (C.indices, R.indices), (C.data, R.data)):
        np.testing.assert_array_equal(_bits(got), _bits(want))


def test_canonicalization_does_not_depend_on_the_thread_count(rng):
    """Many row blocks, every row kind: the same bits on 1 and on 2 threads."""
    from fastnewton._threads import thread_limit
    from fastnewton.linalg._canon_kernels import CANON_BLOCK_ROWS

    n, d = 3 * CANON_BLOCK_ROWS + 17, 60
    lengths = rng.integers(0, 45, n)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    M = sp.csr_array((rng.standard_normal(indptr[-1]), rng.integers(0, d, indptr[-1]), indptr),
                     shape=(n, d))
    out = []
    for t in (1, 2):
        with thread_limit(t):
            C = check_matrix(M)
        out.append([_bits(a).copy() for a in (C.indptr, C.indices, C.data)])
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_of_a_noncanonical_matrix_are_refused(rng, where, bad):
    """The values of a matrix that is copied to canonical form are checked during the
    copy: one NaN or infinity, in the first or the last row block, is found."""
    from fastnewton.linalg._canon_kernels import CANON_BLOCK_ROWS

    n, k, d = 2 * CANON_BLOCK_ROWS + 5, 6, 40
    indices = rng.integers(0, d, n * k)
    data = rng.standard_normal(n * k)
    data[0 if where == "first" else n * k - 1] = bad
    M = sp.csr_array((data, indices, np.arange(0, n * k + 1, k)), shape=(n, d))
    assert not M.has_canonical_format
    with pytest.raises(ValueError, match="A contains NaN or infinite values"):
        check_matrix(M)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 12, 16])
def test_merge_networks_sort_every_input(n):
    """0-1 principle: a comparator network sorts every input iff it sorts every 0-1
    input; all 2**n of them, for the small widths."""
    from fastnewton.linalg._canon_kernels import _merge_network

    pairs = _merge_network(n)
    keys = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).T.copy()  # (n, 2**n)
    for a, b in pairs:
        keys[a], keys[b] = np.minimum(keys[a], keys[b]), np.maximum(keys[a], keys[b])
    assert (np.diff(keys, axis=0) >= 0).all()


def test_merge_networks_of_every_size_class_sort(rng):
    from fastnewton.linalg._canon_kernels import SMALL_ROW, sort_networks

    widths, pairs, ptr, class_of = sort_networks()
    assert widths[-1] == SMALL_ROW and (np.diff(widths) > 0).all()
    for m in range(2, SMALL_ROW + 1):
        assert m <= widths[class_of[m]] and (class_of[m] == 0 or m > widths[class_of[m] - 1])
    for c, w in enumerate(widths):
        keys = rng.integers(0, 5, size=(w, 500))
        want = np.sort(keys, axis=0)
        for a, b in pairs[ptr[c]:ptr[c + 1]]:
            keys[a], keys[b] = np.minimum(keys[a], keys[b]), np.maximum(keys[a], keys[b])
        np.testing.assert_array_equal(keys, want)
