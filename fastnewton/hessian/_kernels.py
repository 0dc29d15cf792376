"""Numba kernels for Hessian assembly over raw CSR/CSC arrays."""

import numpy as np
from numba import njit, prange

__all__ = ["csr_gram_upper", "mirror_upper"]


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_gram_upper(indptr, indices, data, t_indptr, t_rows, t_data, beta, out):
    """Upper triangle of A^T diag(beta) A, one output row per column of A.

    ``(indptr, indices, data)`` is A in CSR with sorted indices and
    ``(t_indptr, t_rows, t_data)`` the same matrix in CSC. Row j of the output is
    ``sum_{i in col j} A[i, j] beta[i] A[i, j:]``: every output row is written by one
    thread only, in a fixed order, so the result does not depend on the thread count.
    ``out`` must be zeroed by the caller; only entries (j, k >= j) are written.
    """
    d = t_indptr.shape[0] - 1
    for j in prange(d):
        orow = out[j]
        for q in range(t_indptr[j], t_indptr[j + 1]):
            i = t_rows[q]
            s = t_data[q] * beta[i]
            if s == 0.0:
                continue
            # Sorted indices: skip the part of row i left of column j.
            lo = np.int64(indptr[i])
            hi = np.int64(indptr[i + 1])
            while lo < hi and indices[lo] < j:
                lo += 1
            for k in range(lo, hi):
                orow[np.uint64(indices[k])] += s * data[k]


@njit(cache=True)
def mirror_upper(G):
    """Copy the upper triangle of the square matrix G into its lower triangle."""
    d = G.shape[0]
    for j in range(d):
        for k in range(j + 1, d):
            G[k, j] = G[j, k]


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_gram_blocks(indptr, indices, data, beta, buf):
    """Upper triangles of A_b^T diag(beta_b) A_b for ``buf.shape[0]`` fixed row blocks b.

    Streams A once, row by row; block b accumulates row outer products into its own
    d x d buffer (zeroed here). Sum the buffers in block order afterwards: the result
    does not depend on the thread count. Requires sorted column indices per row.
    """
    n = indptr.shape[0] - 1
    nb = buf.shape[0]
    d = buf.shape[1]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        G = buf[b]
        for j in range(d):
            for k in range(d):
                G[j, k] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            bi = beta[i]
            if bi == 0.0:
                continue
            lo = np.uint64(indptr[i])
            hi = np.uint64(indptr[i + 1])
            for p in range(lo, hi):
                s = bi * data[p]
                row = G[np.uint64(indices[p])]
                for q in range(p, hi):
                    row[np.uint64(indices[q])] += s * data[q]


@njit(cache=True, parallel=True)
def sum_square_blocks(buf, out):
    """out = sum_b buf[b] in block order (parallel over output rows), upper triangle only."""
    nb = buf.shape[0]
    d = buf.shape[1]
    for j in prange(d):
        for k in range(j, d):
            acc = buf[0, j, k]
            for b in range(1, nb):
                acc += buf[b, j, k]
            out[j, k] = acc


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_normal_matmat(indptr, indices, data, beta, P, buf, out, T):
    """T = A P and out = A^T (beta[:, None] * T) for P of shape (d, k), in one pass over A.

    Row blocks (``buf.shape[0]`` of them, fixed by the caller from n alone) accumulate
    into their own (d, k) buffers, summed afterwards in block order: the result does
    not depend on the thread count.
    """
    n = indptr.shape[0] - 1
    nb = buf.shape[0]
    d = buf.shape[1]
    k = buf.shape[2]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        acc_b = buf[b]
        for j in range(d):
            for c in range(k):
                acc_b[j, c] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            lo = np.uint64(indptr[i])
            hi = np.uint64(indptr[i + 1])
            for c in range(k):
                T[i, c] = 0.0
            for q in range(lo, hi):
                a = data[q]
                prow = P[np.uint64(indices[q])]
                for c in range(k):
                    T[i, c] += a * prow[c]
            bi = beta[i]
            if bi != 0.0:
                for q in range(lo, hi):
                    a = data[q] * bi
                    orow = acc_b[np.uint64(indices[q])]
                    for c in range(k):
                        orow[c] += a * T[i, c]
    for j in prange(d):
        for c in range(k):
            s = buf[0, j, c]
            for b in range(1, nb):
                s += buf[b, j, c]
            out[j, c] = s
