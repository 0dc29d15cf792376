"""BLAS routines callable from numba kernels (scipy's LP64 BLAS, Fortran interface).

numba's own ``np.dot`` copies non-contiguous operands and has no ``syrk``; calling the
BLAS through a ctypes pointer would make a kernel uncacheable. Instead each routine's
address (from ``scipy.linalg.cython_blas``) is registered with LLVM under a fixed
symbol name when this module is imported, and kernels call that symbol: cached machine
code then links against the address of the running process.

Arguments follow the Fortran convention: every argument is passed by address, given
here as an integer (``array.ctypes.data`` plus a byte offset). The caller keeps the
arrays behind those addresses alive for the duration of the call, which is why kernels
receive their parameter arrays from Python instead of allocating them.
"""

from __future__ import annotations

import llvmlite.binding as ll
from numba import types
from numba.extending import get_cython_function_address

__all__ = ["dsyrk"]

_P = types.intp  # an address

ll.add_symbol("fastnewton_dsyrk", get_cython_function_address("scipy.linalg.cython_blas",
                                                              "dsyrk"))
#: ``dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)``: C = alpha op(A) op(A)^T + beta C
#: on the triangle ``uplo`` of the n x n column-major C (all arguments by address).
dsyrk = types.ExternalFunction("fastnewton_dsyrk", types.void(*(_P,) * 10))
