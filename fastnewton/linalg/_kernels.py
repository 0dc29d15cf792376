"""Numba kernels over raw CSR arrays: SpMV, transpose SpMV and the fused normal product.

Kernels never validate and never allocate their outputs: callers (``_design.py``) check
inputs and pass preallocated buffers. Reductions over rows go through a fixed number of
row blocks, chosen from ``n`` alone, each block writing its own buffer row; the buffers
are then summed in block order. The result is therefore bitwise identical for any
number of threads.
"""

from numba import njit, prange

__all__ = ["csr_matvec", "csr_rmatvec", "csr_normal_matvec", "sum_blocks"]


@njit(cache=True, parallel=True, fastmath={"contract"})
def csr_matvec(indptr, indices, data, x, out):
    """out[i] = sum_j A[i, j] x[j]   (rows in parallel; float64 accumulation)."""
    n = indptr.shape[0] - 1
    for i in prange(n):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * x[indices[k]]
        out[i] = acc


@njit(cache=True)
def sum_blocks(buf, out):
    """out = sum of buf's rows, in row order (fixed-order reduction)."""
    nb, d = buf.shape
    for j in range(d):
        out[j] = buf[0, j]
    for b in range(1, nb):
        for j in range(d):
            out[j] += buf[b, j]


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
                for k in range(indptr[i], indptr[i + 1]):
                    row[indices[k]] += data[k] * yi
    sum_blocks(buf, out)


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
            for k in range(indptr[i], indptr[i + 1]):
                acc += data[k] * p[indices[k]]
            t[i] = acc
            s = beta[i] * acc
            if s != 0.0:
                for k in range(indptr[i], indptr[i + 1]):
                    row[indices[k]] += data[k] * s
    sum_blocks(buf, out)
