"""Numba kernels over raw CSR arrays: SpMV, transpose SpMV and the fused normal product.

Kernels never validate and never allocate their outputs: callers (``_design.py``) check
inputs and pass preallocated buffers. Reductions over rows go through a fixed number of
row blocks, chosen from ``n`` alone, each block writing its own buffer row; the buffers
are then summed in block order. The result is therefore bitwise identical for any
number of threads.
"""

import numpy as np
from numba import njit, prange

__all__ = ["csr_matvec", "csr_rmatvec", "csr_rmatvec2", "csr_normal_matvec", "sum_blocks",
           "dot_blocks", "curvature_blocks", "csr_row_sq_norms", "axpby",
           "csr_normal_matvec_bias", "compressed_structure_blocks", "canonicalize_rows",
           "compact_rows"]


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_matvec(indptr, indices, data, x, out):
    """out[i] = sum_j A[i, j] x[j]   (rows in parallel; float64 accumulation)."""
    n = indptr.shape[0] - 1
    for i in prange(n):
        acc = 0.0
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
            acc += data[k] * x[np.uint64(indices[k])]
        out[i] = acc


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_row_sq_norms(indptr, indices, data, M, bias, out):
    """out[i] = ‖(A M)_i + bias‖² for a dense (d, k) M and a (k,) bias (zeros: no bias;
    the ones column of an intercept design: the last row of its M), without forming A M:
    each row's k-vector is accumulated in a per-block buffer (rows of a block in order,
    one thread each), its squared norm summed with eight interleaved accumulators."""
    n = indptr.shape[0] - 1
    k = M.shape[1]
    rows = 256
    for blk in prange((n + rows - 1) // rows):
        t = np.empty(k)
        acc = np.empty(8)
        for i in range(blk * rows, min(n, (blk + 1) * rows)):
            for j in range(k):
                t[j] = bias[j]
            for kk in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                v = data[kk]
                mrow = M[np.uint64(indices[kk])]
                for j in range(k):
                    t[j] += v * mrow[j]
            for q in range(8):
                acc[q] = 0.0
            j = 0
            while j + 8 <= k:
                for q in range(8):
                    acc[q] += t[j + q] * t[j + q]
                j += 8
            while j < k:
                acc[0] += t[j] * t[j]
                j += 1
            out[i] = (((acc[0] + acc[1]) + (acc[2] + acc[3]))
                      + ((acc[4] + acc[5]) + (acc[6] + acc[7])))


@njit(cache=True)
def sum_blocks(buf, out):
    """out = sum of buf's rows, in row order (fixed-order reduction)."""
    nb, d = buf.shape
    for j in range(d):
        out[j] = buf[0, j]
    for b in range(1, nb):
        for j in range(d):
            out[j] += buf[b, j]


@njit(cache=True, parallel=True)
def axpby(alpha, x, beta, y, out):
    """out = alpha x + beta y (elementwise, no fused multiply-add: numpy's rounding)."""
    for i in prange(x.shape[0]):
        out[i] = alpha * x[i] + beta * y[i]


@njit(cache=True, parallel=True)
def curvature_blocks(beta, a, b, U, nb):
    """One pass for the exact curvatures along two directions: returns
    ``[Σβa², Σβab, Σβb², U^T a (k), U^T b (k)]`` (U (n, k), k may be 0), each summed over
    ``nb`` fixed row blocks added in block order. Two columns take unrolled loops."""
    n = a.shape[0]
    k = U.shape[1]
    step = (n + nb - 1) // nb
    part = np.zeros((nb, 3 + 2 * k))
    for blk in prange(nb):
        acc = part[blk]
        saa = sab = sbb = 0.0
        u0a = u1a = u0b = u1b = 0.0
        for i in range(blk * step, min(n, (blk + 1) * step)):
            ai, bi = a[i], b[i]
            wa, wb = beta[i] * ai, beta[i] * bi
            saa += wa * ai
            sab += wa * bi
            sbb += wb * bi
            if k == 2:
                u0, u1 = U[i, 0], U[i, 1]
                u0a += u0 * ai
                u1a += u1 * ai
                u0b += u0 * bi
                u1b += u1 * bi
            elif k > 0:
                for j in range(k):
                    acc[3 + j] += U[i, j] * ai
                    acc[3 + k + j] += U[i, j] * bi
        acc[0], acc[1], acc[2] = saa, sab, sbb
        if k == 2:
            acc[3], acc[4], acc[5], acc[6] = u0a, u1a, u0b, u1b
    total = part[0].copy()
    for blk in range(1, nb):
        total += part[blk]
    return total


@njit(cache=True, parallel=True)
def dot_blocks(a, b, c, nb):
    """sum_i a_i b_i c_i over ``nb`` fixed row blocks, block sums added in block order.

    Each block sums with four interleaved accumulators (instruction-level parallelism
    without reassociation flags).
    """
    n = a.shape[0]
    step = (n + nb - 1) // nb
    part = np.empty(nb)
    for blk in prange(nb):
        lo = blk * step
        hi = min(n, lo + step)
        s0 = s1 = s2 = s3 = 0.0
        i = lo
        while i + 4 <= hi:
            s0 += a[i] * b[i] * c[i]
            s1 += a[i + 1] * b[i + 1] * c[i + 1]
            s2 += a[i + 2] * b[i + 2] * c[i + 2]
            s3 += a[i + 3] * b[i + 3] * c[i + 3]
            i += 4
        while i < hi:
            s0 += a[i] * b[i] * c[i]
            i += 1
        part[blk] = (s0 + s1) + (s2 + s3)
    total = 0.0
    for blk in range(nb):
        total += part[blk]
    return total


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_rmatvec(indptr, indices, data, y, buf, out):
    """out = A^T y, through ``buf.shape[0]`` row blocks reduced in order."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            yi = y[i]
            if yi != 0.0:
                for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                    row[np.uint64(indices[k])] += data[k] * yi
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_rmatvec2(indptr, indices, data, Y, buf, out):
    """out = A^T Y for two columns, Y (n, 2), in one pass over A (1.8x faster than two
    :func:`csr_rmatvec`; a loop over a general number of columns was slower than
    separate passes), through ``buf.shape[0]`` row blocks (``buf`` (nb, d, 2))."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape[0], buf.shape[1]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        blk = buf[b]
        for j in range(d):
            blk[j, 0] = 0.0
            blk[j, 1] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            y0, y1 = Y[i, 0], Y[i, 1]
            for kk in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                col = np.uint64(indices[kk])
                v = data[kk]
                blk[col, 0] += v * y0
                blk[col, 1] += v * y1
    sum_blocks(buf.reshape(nb, 2 * d), out.reshape(2 * d))


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_normal_matvec(indptr, indices, data, beta, p, buf, out, t):
    """t = A p and out = A^T (beta * t), in one pass over A (blocks reduced in order)."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            acc = 0.0
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                acc += data[k] * p[np.uint64(indices[k])]
            t[i] = acc
            s = beta[i] * acc
            if s != 0.0:
                for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                    row[np.uint64(indices[k])] += data[k] * s
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_normal_matvec_bias(indptr, indices, data, beta, p, c, buf, sbuf, out, t):
    """:func:`csr_normal_matvec` for the design [A, 1]: t = A p + c, out = A^T (beta * t)
    and ``sbuf[b]`` the sum of beta * t over row block b (add them in block order for the
    ones column), in one pass over A."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        ssum = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            acc = 0.0
            for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                acc += data[k] * p[np.uint64(indices[k])]
            acc += c
            t[i] = acc
            s = beta[i] * acc
            ssum += s
            if s != 0.0:
                for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                    row[np.uint64(indices[k])] += data[k] * s
        sbuf[b] = ssum
    sum_blocks(buf, out)


# -- structure checks and canonicalization (called by _validation after the indptr checks) --

@njit(cache=True)
def _chunk_range_and_pairs(indices, k0, k1):
    """(min, max, number of k in (k0, k1) with indices[k] <= indices[k - 1]) of a chunk;
    serial loops the compiler vectorizes (inside a prange body they are not)."""
    seg = indices[k0:k1]  # loops from 0: no negative-index checks, so they vectorize
    lo = seg[0]
    hi = seg[0]
    for k in range(seg.shape[0]):
        lo = min(lo, seg[k])
        hi = max(hi, seg[k])
    bad = np.int64(0)
    for k in range(1, seg.shape[0]):
        bad += seg[k] <= seg[k - 1]
    if k0 > 0:
        bad += indices[k0] <= indices[k0 - 1]
    return np.int64(lo), np.int64(hi), bad


@njit(cache=True, parallel=True)
def compressed_structure_blocks(indptr, indices, nb, out):
    """One pass over the indices of a compressed (CSR/CSC) matrix in ``nb`` fixed chunks
    of its nonzeros: ``out[b] = (min index, max index, number of adjacent pairs within a
    row that do not increase strictly)`` of chunk b (min > max for an empty chunk).

    Reads ``indices[:indptr[-1]]`` only: the caller has checked that ``indptr`` starts at
    0, does not decrease and ends within ``indices``. The pairs are counted over the flat
    array (simple loops that vectorize), then the pairs that straddle a row boundary are
    taken off. A matrix is canonical iff the counts are 0.
    """
    n = indptr.shape[0] - 1
    nnz = np.int64(indptr[n])
    step = (nnz + nb - 1) // nb
    rstep = (n + nb - 1) // nb
    for b in prange(nb):
        k0, k1 = b * step, min(nnz, (b + 1) * step)
        out[b, 0] = np.iinfo(np.int64).max
        out[b, 1] = -1
        out[b, 2] = 0
        if k1 > k0:
            lo, hi, bad = _chunk_range_and_pairs(indices, k0, k1)
            out[b, 0] = lo
            out[b, 1] = hi
            out[b, 2] = bad
        # row boundaries s = indptr[i] (each position once: where row i - 1 is not
        # empty); branch-free, reads clamped into [0, nnz)
        crossing = np.int64(0)
        r0, r1 = max(1, b * rstep), min(n, (b + 1) * rstep)
        if r1 > r0 and nnz > 1:
            cur = indptr[r0:r1]
            prev = indptr[r0 - 1:r1 - 1]
            for q in range(cur.shape[0]):
                s = np.int64(cur[q])
                inside = (s > np.int64(prev[q])) & (s < nnz)
                hi_k = min(s, nnz - 1)
                lo_k = max(hi_k - 1, 0)
                crossing += inside & (indices[hi_k] <= indices[lo_k])
        out[b, 2] -= crossing


@njit(cache=True, parallel=True)
def canonicalize_rows(indptr, indices, data, out_indices, out_data, row_len):
    """Sort each row's (index, value) pairs by index, stably, and sum duplicates in their
    original order, as ``scipy.sparse`` ``sum_duplicates`` does (left to right, in the
    values' dtype); explicit zeros are kept.

    Row i is written to ``out_*[indptr[i]:indptr[i] + row_len[i]]`` (``row_len[i]`` the
    number of distinct indices of the row); the rest of its range is left unspecified.
    Rows are independent (disjoint outputs), so the result does not depend on the thread
    count. Sorted rows are copied, strictly decreasing rows (what scipy's sparse products
    return) reversed; other rows are sorted as keys ``index * 2**32 + position`` (unique,
    so any sort is stable): by rank (branch-free counting) up to 48 entries, by numpy's
    sort above.
    """
    n = indptr.shape[0] - 1
    nb = min(n, 4096)
    step = (n + nb - 1) // nb
    one = np.uint64(1)
    for b in prange(nb):
        keys = np.empty(48, dtype=np.int64)
        tmp = np.empty(48, dtype=np.int64)
        for i in range(b * step, min(n, (b + 1) * step)):
            # unsigned positions: no negative-index checks in the loops
            start, end = np.uint64(indptr[i]), np.uint64(indptr[i + 1])
            m = end - start
            if m == 0:
                row_len[i] = 0
                continue
            increasing = np.uint64(0)
            decreasing = np.uint64(0)
            for k in range(start + one, end):
                increasing += np.uint64(indices[k] > indices[k - one])
                decreasing += np.uint64(indices[k] < indices[k - one])
            if increasing == m - one:
                for k in range(start, end):
                    out_indices[k] = indices[k]
                    out_data[k] = data[k]
                row_len[i] = m
                continue
            if decreasing == m - one:
                for k in range(m):
                    out_indices[start + k] = indices[end - one - k]
                    out_data[start + k] = data[end - one - k]
                row_len[i] = m
                continue
            if m <= np.uint64(keys.shape[0]):
                row_keys = keys
                mi = np.int64(m)
                for q in range(mi):
                    tmp[q] = (np.int64(indices[start + np.uint64(q)]) << 32) + q
                for q in range(mi):  # rank sort: branch-free counting, keys are unique
                    key = tmp[q]
                    r = 0
                    for p in range(mi):
                        r += tmp[p] < key
                    row_keys[r] = key
            else:
                row_keys = np.empty(m, dtype=np.int64)
                for q in range(m):
                    row_keys[q] = (np.int64(indices[start + q]) << 32) + np.int64(q)
                row_keys.sort()
            w = start
            last = np.int64(-1)
            first = True
            for q in range(m):  # sum runs of equal indices, left to right
                key = row_keys[q]
                j = key >> 32
                v = data[start + np.uint64(key & 0xFFFFFFFF)]
                if j == last:
                    out_data[w] += v
                else:
                    if not first:
                        w += one
                    first = False
                    last = j
                    out_indices[w] = j
                    out_data[w] = v
            row_len[i] = w + one - start


@njit(cache=True)
def compact_rows(indptr, row_len, new_indptr, indices, data):
    """Move row i from ``indptr[i]`` to ``new_indptr[i]`` (its first ``row_len[i]``
    entries), in place, rows in increasing order (every row moves left or stays)."""
    n = indptr.shape[0] - 1
    for i in range(n):
        src, dst = np.int64(indptr[i]), np.int64(new_indptr[i])
        if src != dst:
            for k in range(row_len[i]):
                indices[dst + k] = indices[src + k]
                data[dst + k] = data[src + k]
