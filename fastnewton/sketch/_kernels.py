"""Numba kernels for sketches over raw CSR arrays."""

from numba import njit, prange

__all__ = ["countsketch_csr"]


@njit(cache=True, parallel=True, fastmath={"contract"})
def countsketch_csr(indptr, indices, data, order, bucket_ptr, row_coef, out):
    """out[b, :] += sum over rows i of bucket b of row_coef[i] * A[i, :].

    ``order[bucket_ptr[b]:bucket_ptr[b + 1]]`` lists the rows hashed to bucket b in
    increasing order; ``row_coef`` folds the sign and any row weight. Buckets are
    processed in parallel, each written by one thread in row order: deterministic.
    """
    m = bucket_ptr.shape[0] - 1
    for b in prange(m):
        orow = out[b]
        for q in range(bucket_ptr[b], bucket_ptr[b + 1]):
            i = order[q]
            c = row_coef[i]
            if c == 0.0:
                continue
            for k in range(indptr[i], indptr[i + 1]):
                orow[indices[k]] += c * data[k]


@njit(cache=True, parallel=True, fastmath={"contract"})
def countsketch_sorted_csr(indptr, indices, data, bucket_ptr, row_coef, out):
    """CountSketch of a CSR matrix whose rows are already grouped by bucket.

    Rows ``bucket_ptr[b]:bucket_ptr[b + 1]`` of the (reordered) matrix belong to
    bucket b, so each thread streams a contiguous slice of A: one pass, no gathers.
    """
    m = bucket_ptr.shape[0] - 1
    for b in prange(m):
        orow = out[b]
        for i in range(bucket_ptr[b], bucket_ptr[b + 1]):
            c = row_coef[i]
            if c == 0.0:
                continue
            for k in range(indptr[i], indptr[i + 1]):
                orow[indices[k]] += c * data[k]
