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
           "csr_normal_matvec_bias", "compressed_structure_blocks", "plan_canonical_rows",
           "write_canonical_rows", "sort_networks", "SMALL_ROW", "CANON_BLOCK_ROWS",
           "csr_weighted_col_sq", "csr_rmatvec_diag", "dense_rmatvec", "dense_rmatvec_diag", "dense_normal_matvec",
           "dense_weighted_col_sq"]


@njit(cache=True, fastmath={"contract"}, inline="always")
def _csr_row_dot(indices, data, p, k0, k1):
    """sum_k data[k] p[indices[k]] over k in [k0, k1), in four interleaved accumulators
    (four independent multiply-add chains: 1.1-1.2x faster on 20-nonzero rows)."""
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    k = k0
    four = np.uint64(4)
    while k + four <= k1:
        a0 += data[k] * p[np.uint64(indices[k])]
        a1 += data[k + np.uint64(1)] * p[np.uint64(indices[k + np.uint64(1)])]
        a2 += data[k + np.uint64(2)] * p[np.uint64(indices[k + np.uint64(2)])]
        a3 += data[k + np.uint64(3)] * p[np.uint64(indices[k + np.uint64(3)])]
        k += four
    while k < k1:
        a0 += data[k] * p[np.uint64(indices[k])]
        k += np.uint64(1)
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, fastmath={"contract"}, inline="always")
def _dense_row_dot(a, p):
    """sum_j a[j] p[j] in four interleaved accumulators."""
    d = a.shape[0]
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    j = 0
    while j + 4 <= d:
        a0 += a[j] * p[j]
        a1 += a[j + 1] * p[j + 1]
        a2 += a[j + 2] * p[j + 2]
        a3 += a[j + 3] * p[j + 3]
        j += 4
    while j < d:
        a0 += a[j] * p[j]
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_matvec(indptr, indices, data, x, out):
    """out[i] = sum_j A[i, j] x[j]   (rows in parallel; float64 accumulation)."""
    n = indptr.shape[0] - 1
    for i in prange(n):
        out[i] = _csr_row_dot(indices, data, x, np.uint64(indptr[i]), np.uint64(indptr[i + 1]))


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
def axpy_max_abs(alpha, x, y, buf):
    """y += alpha x in place (numpy's rounding) and return max |x|, over fixed row blocks
    (one partial maximum per block in buf: exact for any thread count)."""
    n = x.shape[0]
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    for blk in prange(nb):
        m = 0.0
        for i in range(blk * step, min(n, (blk + 1) * step)):
            v = x[i]
            y[i] += alpha * v
            a = abs(v)
            if a > m:
                m = a
        buf[blk] = m
    return buf.max()


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
            acc = _csr_row_dot(indices, data, p, np.uint64(indptr[i]), np.uint64(indptr[i + 1]))
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
            acc = _csr_row_dot(indices, data, p, np.uint64(indptr[i]), np.uint64(indptr[i + 1]))
            acc += c
            t[i] = acc
            s = beta[i] * acc
            ssum += s
            if s != 0.0:
                for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                    row[np.uint64(indices[k])] += data[k] * s
        sbuf[b] = ssum
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_weighted_col_sq(indptr, indices, data, w, buf, out):
    """out[j] = sum_i w[i] A[i, j]^2: the diagonal of A^T diag(w) A in one pass over A,
    through ``buf.shape[0]`` fixed row blocks (buf (nb, d)) summed in block order, so the
    result does not depend on the thread count."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            wi = w[i]
            if wi != 0.0:
                for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                    v = data[k]
                    row[np.uint64(indices[k])] += wi * v * v
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_rmatvec_diag(indptr, indices, data, y, w, buf, out):
    """``out[:, 0] = A^T y`` and ``out[:, 1] = sum_i w_i A_ij^2`` (the diagonal of
    A^T diag(w) A, rounded as :func:`csr_weighted_col_sq`
    rounds it) in one pass over A, through ``buf.shape[0]`` row blocks (``buf``
    (nb, d, 2)) reduced in order."""
    n = indptr.shape[0] - 1
    nb, d = buf.shape[0], buf.shape[1]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        blk = buf[b]
        for j in range(d):
            blk[j, 0] = 0.0
            blk[j, 1] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            yi, wi = y[i], w[i]
            for kk in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                col = np.uint64(indices[kk])
                v = data[kk]
                blk[col, 0] += v * yi
                blk[col, 1] += wi * v * v
    sum_blocks(buf.reshape(nb, 2 * d), out.reshape(2 * d))


# -- dense row-major kernels: the same fixed row blocks, one pass over A each --------------

@njit(cache=True, parallel=True, fastmath={"contract"})
def dense_rmatvec(A, y, buf, out):
    """out = A^T y for a C-contiguous A (1.7x faster than BLAS ``gemv`` on A.T, and the
    same bits for any thread count)."""
    n, d = A.shape
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            a = A[i]
            s = y[i]
            if s != 0.0:
                for j in range(d):
                    row[j] += a[j] * s
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def dense_rmatvec_diag(A, y, w, buf, out, dout):
    """out = A^T y and dout = sum_i w_i A_ij^2 in one pass over a C-contiguous A
    (``buf`` (nb, 2, d))."""
    n, d = A.shape
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b, 0]
        drow = buf[b, 1]
        for j in range(d):
            row[j] = 0.0
            drow[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            a = A[i]
            s = y[i]
            wi = w[i]
            for j in range(d):
                v = a[j]
                row[j] += v * s
                drow[j] += wi * v * v
    sum_blocks(buf[:, 0], out)
    sum_blocks(buf[:, 1], dout)


@njit(cache=True, parallel=True, fastmath={"contract"})
def dense_weighted_col_sq(A, w, buf, out):
    """out[j] = sum_i w_i A_ij^2 in one pass over a C-contiguous A (3x numpy's einsum)."""
    n, d = A.shape
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            a = A[i]
            wi = w[i]
            if wi != 0.0:
                for j in range(d):
                    v = a[j]
                    row[j] += wi * v * v
    sum_blocks(buf, out)


@njit(cache=True, parallel=True, fastmath={"contract"})
def dense_normal_matvec(A, beta, p, c, buf, sbuf, out, t):
    """t = A p + c, out = A^T (beta * t) and ``sbuf[b]`` the sum of beta * t over row
    block b, in one pass over a C-contiguous A (each row is read once and reused from
    cache: 2.2x two BLAS ``gemv``)."""
    n, d = A.shape
    nb = buf.shape[0]
    step = (n + nb - 1) // nb
    for b in prange(nb):
        row = buf[b]
        for j in range(d):
            row[j] = 0.0
        ssum = 0.0
        for i in range(b * step, min(n, (b + 1) * step)):
            a = A[i]
            acc = _dense_row_dot(a, p) + c
            t[i] = acc
            s = beta[i] * acc
            ssum += s
            if s != 0.0:
                for j in range(d):
                    row[j] += a[j] * s
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


# -- canonicalization: two passes over fixed row blocks (called by _validation) --
#
# Pass 1 (plan_canonical_rows) sorts the rows that need it and records, for every row, its
# number of distinct indices and how pass 2 writes it; the caller sums the counts of each
# block; pass 2 (write_canonical_rows) turns the counts into the new indptr and writes
# every row at its final place. Rows are independent and each is written by one thread,
# so the result does not depend on the thread count or on how rows are grouped.

#: Row kinds recorded by :func:`plan_canonical_rows`.
ROW_COPY, ROW_REVERSE, ROW_SLOTS, ROW_LONG = 0, 1, 2, 3
#: Longest row sorted by a sorting network (a key holds 7 bits of position; a slot, 7
#: bits of place and a flag).
SMALL_ROW = 128
#: Rows per block of both passes (the per-block counts of pass 1 are pass 2's offsets).
CANON_BLOCK_ROWS = 2048
_POS_BITS = 7
_LANES = 64  # rows sorted together, one per lane of the networks' min/max loops
_CHECK_ROWS = 256  # pass 2 checks the values of this many rows just after reading them


@njit(cache=True)
def _merge_network(n):
    """The comparators (i, j), i < j, of Batcher's odd-even merge sort of n keys (any
    n >= 1), in the order they are applied: after ``k[i], k[j] = min, max`` for each,
    the keys are sorted."""
    pairs = [(0, 0)]  # typed by its first element, dropped below
    p = 1
    while p < n:
        k = p
        while k >= 1:
            j = k % p
            while j < n - k:
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
                j += 2 * k
            k //= 2
        p *= 2
    out = np.empty((len(pairs) - 1, 2), dtype=np.int64)
    for c in range(1, len(pairs)):
        out[c - 1, 0] = pairs[c][0]
        out[c - 1, 1] = pairs[c][1]
    return out


@njit(cache=True)
def sort_networks():
    """The size classes of short rows and their sorting networks:
    ``(widths, pairs, pair_ptr, class_of)``: class c sorts ``widths[c]`` keys (4, 8, ..,
    32, then 48, 64, 96, 128) with the comparators ``pairs[pair_ptr[c]:pair_ptr[c + 1]]``;
    a row of m entries (2 <= m <= SMALL_ROW) is in class ``class_of[m]``, the narrowest
    that holds it."""
    widths = np.array([4, 8, 12, 16, 20, 24, 28, 32, 48, 64, 96, 128], dtype=np.int64)
    n_cls = widths.shape[0]
    nets = [_merge_network(widths[c]) for c in range(n_cls)]
    pair_ptr = np.zeros(n_cls + 1, dtype=np.int64)
    for c in range(n_cls):
        pair_ptr[c + 1] = pair_ptr[c] + nets[c].shape[0]
    pairs = np.empty((pair_ptr[n_cls], 2), dtype=np.int64)
    for c in range(n_cls):
        pairs[pair_ptr[c]:pair_ptr[c + 1]] = nets[c]
    class_of = np.zeros(SMALL_ROW + 1, dtype=np.int64)
    c = 0
    for m in range(1, SMALL_ROW + 1):
        if m > widths[c]:
            c += 1
        class_of[m] = c
    return widths, pairs, pair_ptr, class_of


@njit(cache=True)
def _apply_network(pairs, keys):
    """Sort every column (lane) of ``keys`` (width, lanes) with the comparators ``pairs``;
    the loop over lanes is the vectorized one."""
    lanes = keys.shape[1]
    for c in range(pairs.shape[0]):
        a, b = pairs[c, 0], pairs[c, 1]
        for lane in range(lanes):
            x = keys[a, lane]
            y = keys[b, lane]
            keys[a, lane] = min(x, y)
            keys[b, lane] = max(x, y)


@njit(cache=True)
def _finish_group(pairs, keys, rows, mlen, count, scratch, code, indptr, counts, kind, slot):
    """Sort a group of short rows, row ``rows[l]`` in lane l of ``keys`` (width, lanes):
    its ``mlen[l]`` keys ``index * 2**_POS_BITS + position``, then padding above every
    key. Records for each row i its number of distinct indices (``counts[i]``) and, for
    its entry at position q, ``slot[indptr[i] + q]`` = the entry's place among the row's
    distinct indices, + 128 where it is the first (leftmost) entry of its index (the
    keys are unique, so the sort is stable). Returns the sum of the counts. Vectorized
    over lanes but the final scatter."""
    _apply_network(pairs, keys)
    width, lanes = keys.shape
    prev, distinct = scratch[0], scratch[1]
    for lane in range(lanes):
        prev[lane] = -1
        distinct[lane] = 0
    for r in range(width):
        for lane in range(lanes):
            j = keys[r, lane] >> _POS_BITS
            first = j != prev[lane]
            prev[lane] = j
            distinct[lane] += first & (r < mlen[lane])
            code[r, lane] = distinct[lane] - 1 + (first << 7)
    low = (1 << _POS_BITS) - 1
    total = np.int64(0)
    for lane in range(count):
        i = rows[lane]
        start = np.uint64(indptr[i])
        counts[i] = distinct[lane]
        total += distinct[lane]
        kind[i] = ROW_SLOTS
        for r in range(mlen[lane]):
            slot[start + np.uint64(keys[r, lane] & low)] = code[r, lane]
    return total


@njit(cache=True)
def _plan_block(indptr, indices, pad, small_max, nets, lo, hi, counts, kind, slot):
    """:func:`plan_canonical_rows` on rows lo..hi-1; returns their total count. Sorted
    and strictly decreasing rows are recognized; unsorted rows of up to ``small_max``
    entries are collected by size class, ``_LANES`` rows a group, and sorted a group at
    a time; longer rows are counted after a sort (and sorted again by pass 2)."""
    widths, pairs, pair_ptr, class_of = nets
    n_cls = widths.shape[0]
    key_ptr = np.zeros(n_cls + 1, dtype=np.int64)
    for c in range(n_cls):
        key_ptr[c + 1] = key_ptr[c] + widths[c]
    scratch = np.full((2, _LANES), pad)
    # keys of lanes beyond a group's rows are sorted but never read
    keys = np.empty((key_ptr[n_cls], _LANES), dtype=scratch.dtype)
    rows = np.empty((n_cls, _LANES), dtype=np.int64)
    mlen = np.zeros((n_cls, _LANES), dtype=np.int64)
    fill = np.zeros(n_cls, dtype=np.int64)
    code = np.empty((SMALL_ROW, _LANES), dtype=np.uint8)
    total = np.int64(0)
    one = np.uint64(1)
    for i in range(lo, hi):
        # unsigned positions: no negative-index checks in the loops
        start, end = np.uint64(indptr[i]), np.uint64(indptr[i + 1])
        m = np.int64(end - start)
        inc = np.int64(0)
        dec = np.int64(0)
        for k in range(start + one, end):
            inc += indices[k] > indices[k - one]
            dec += indices[k] < indices[k - one]
        if inc >= m - 1 or dec == m - 1:
            kind[i] = ROW_COPY if inc >= m - 1 else ROW_REVERSE
            counts[i] = m
            total += m
        elif m <= small_max:
            c = class_of[m]
            lane = fill[c]
            group = keys[key_ptr[c]:key_ptr[c + 1]]
            for q in range(m):
                group[q, lane] = (np.int64(indices[start + np.uint64(q)]) << _POS_BITS) + q
            for q in range(m, widths[c]):
                group[q, lane] = pad
            rows[c, lane] = i
            mlen[c, lane] = m
            fill[c] = lane + 1
            if lane + 1 == _LANES:
                total += _finish_group(pairs[pair_ptr[c]:pair_ptr[c + 1]], group, rows[c],
                                       mlen[c], _LANES, scratch, code, indptr, counts, kind,
                                       slot)
                fill[c] = 0
        else:
            srt = np.sort(indices[start:end])
            n_distinct = np.int64(1)
            for k in range(1, m):
                n_distinct += srt[k] != srt[k - 1]
            counts[i] = n_distinct
            total += n_distinct
            kind[i] = ROW_LONG
    for c in range(n_cls):
        if fill[c] > 0:
            total += _finish_group(pairs[pair_ptr[c]:pair_ptr[c + 1]],
                                   keys[key_ptr[c]:key_ptr[c + 1]], rows[c], mlen[c],
                                   fill[c], scratch, code, indptr, counts, kind, slot)
    return total


@njit(cache=True, parallel=True)
def plan_canonical_rows(indptr, indices, pad, small_max, counts, kind, slot, block_nnz):
    """Pass 1 of canonicalization. For each row i: ``counts[i]``, its number of distinct
    indices, and ``kind[i]``, how :func:`write_canonical_rows` writes it (ROW_COPY: sorted
    and unique; ROW_REVERSE: strictly decreasing; ROW_SLOTS: through ``slot``; ROW_LONG:
    sorted again); ``block_nnz[b]``, the sum of the counts of row block b
    (``CANON_BLOCK_ROWS`` rows).

    Unsorted rows of 2..``small_max`` entries (``small_max <= SMALL_ROW``) are sorted by
    Batcher merge networks, ``_LANES`` rows of a size class at once, on the keys
    ``index * 2**_POS_BITS + position`` (unique: the order is stable) in the dtype of
    ``pad``, the maximum of a signed integer type that holds ``n_cols * 2**_POS_BITS``;
    their entries get ``slot`` (uint8, one per entry): the place of the entry among its
    row's distinct indices, + 128 for the first entry of each index. Blocks in parallel.
    """
    n = indptr.shape[0] - 1
    nets = sort_networks()
    for b in prange(block_nnz.shape[0]):
        lo = b * CANON_BLOCK_ROWS
        block_nnz[b] = _plan_block(indptr, indices, pad, small_max, nets, lo,
                                   min(n, lo + CANON_BLOCK_ROWS), counts, kind, slot)


@njit(cache=True)
def _write_rows(indptr, indices, data, kind, slot, new_indptr, out_indices, out_data, lo, hi, w):
    """Rows lo..hi-1 of :func:`write_canonical_rows`, the first at ``w``; returns the end."""
    one = np.uint64(1)
    for i in range(lo, hi):
        start, end = np.uint64(indptr[i]), np.uint64(indptr[i + 1])
        m = end - start
        w0 = np.uint64(w)
        w += new_indptr[i + 1]  # the count of pass 1, replaced by the row's end
        new_indptr[i + 1] = w
        how = kind[i]
        if how == ROW_COPY:
            for k in range(m):
                out_indices[w0 + k] = indices[start + k]
                out_data[w0 + k] = data[start + k]
        elif how == ROW_REVERSE:
            for k in range(m):
                out_indices[w0 + k] = indices[end - one - k]
                out_data[w0 + k] = data[end - one - k]
        elif how == ROW_SLOTS:
            for k in range(start, end):  # original order: duplicates summed left to right
                t = np.uint64(slot[k])
                p = w0 + (t & np.uint64(127))
                v = data[k]
                out_indices[p] = indices[k]
                acc = out_data[p]  # not yet written where t >= 128: not used then
                out_data[p] = v if t >= np.uint64(128) else acc + v
        else:
            order = np.argsort(indices[start:end], kind="mergesort")  # stable
            p = w0
            o = start + np.uint64(order[0])
            j = indices[o]
            out_indices[p] = j
            out_data[p] = data[o]
            for q in range(one, m):
                o = start + np.uint64(order[q])
                if indices[o] == j:
                    out_data[p] += data[o]
                else:
                    p += one
                    j = indices[o]
                    out_indices[p] = j
                    out_data[p] = data[o]
    return w


@njit(cache=True)
def _count_nonfinite(data, k0, k1):
    """Number of NaN and infinite values in data[k0:k1] (x - x is 0 exactly when x is
    finite); a loop from 0 over a slice, which vectorizes."""
    seg = data[k0:k1]
    bad = np.int64(0)
    for k in range(seg.shape[0]):
        bad += (seg[k] - seg[k]) != 0
    return bad


@njit(cache=True, parallel=True)
def write_canonical_rows(indptr, indices, data, kind, slot, block_start, new_indptr,
                         out_indices, out_data, nonfinite):
    """Pass 2 of canonicalization: row i with its indices sorted and its duplicates summed
    in their original order (left to right, in the values' dtype, as ``scipy.sparse``
    sums them after a stable sort), explicit zeros kept, written to
    ``out_*[new_indptr[i]:new_indptr[i + 1]]``, following ``kind`` and ``slot`` of
    :func:`plan_canonical_rows`.

    ``new_indptr[1:]`` holds pass 1's counts on entry and the row ends on return (block
    b's rows start at ``block_start[b]``, the sum of the counts of the blocks before).
    ``nonfinite[b]`` is the number of NaN and infinite values among block b's input
    values (counted just after they are read, while they are in cache). Blocks in
    parallel; every output is written by one block only.
    """
    n = indptr.shape[0] - 1
    for b in prange(block_start.shape[0] - 1):
        w = np.int64(block_start[b])
        bad = np.int64(0)
        hi = min(n, (b + 1) * CANON_BLOCK_ROWS)
        for lo in range(b * CANON_BLOCK_ROWS, hi, _CHECK_ROWS):
            top = min(hi, lo + _CHECK_ROWS)
            w = _write_rows(indptr, indices, data, kind, slot, new_indptr, out_indices,
                            out_data, lo, top, w)
            bad += _count_nonfinite(data, np.int64(indptr[lo]), np.int64(indptr[top]))
        nonfinite[b] = bad
