"""Numba kernels of input validation: the structure check of a compressed matrix and the
two-pass canonicalization of CSR rows (sorted, duplicates summed), called by
``fastnewton._validation`` after its indptr checks. Rows are independent and each is
written by one thread: the result does not depend on the thread count.
"""

import numpy as np
from numba import njit, prange

__all__ = ["compressed_structure_blocks", "plan_canonical_rows", "write_canonical_rows",
           "sort_networks", "SMALL_ROW", "CANON_BLOCK_ROWS"]


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
