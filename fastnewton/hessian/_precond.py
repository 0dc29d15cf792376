"""Preconditioners for the Hessian A^T B A + ridge I built from a sketch of diag(sqrt(beta)) A."""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_scalar
from ..exceptions import ValidationError
from ..linalg._design import as_design, check_ridge, ridge_scalar
from ..linalg._factor import shifted_cholesky
from ._gram import _check_parts, sketched_gram
from ._operator import SymmetricOperator

__all__ = ["SketchPreconditioner", "default_preconditioner_size"]


def default_preconditioner_size(n, d):
    """Default sketch size of :class:`SketchPreconditioner`: ``min(n, max(8 d, 64))``."""
    return int(min(n, max(8 * d, 64)))


class SketchPreconditioner(SymmetricOperator):
    r"""Approximate inverse Hessian from the Cholesky factor of a sketched Hessian.

    With :math:`\tilde H = (S D_+^{1/2} A)^T (S D_+^{1/2} A) + (A^T U) C (A^T U)^T +
    \text{ridge}\, I` (see :func:`~fastnewton.hessian.sketched_gram`), this operator is

    .. math:: M = (\tilde H + \tau I)^{-1} = R^{-1} R^{-T},\qquad \tilde H + \tau I = R^T R,

    a symmetric positive definite ``LinearOperator`` (float64, d x d) to pass as ``M`` to
    :func:`fastnewton.linalg.pcg` or ``scipy.sparse.linalg.cg``. If S is a
    :math:`(1\pm\epsilon)` subspace embedding for :math:`D^{1/2} A` (beta >= 0) the
    preconditioned Hessian has condition number at most
    :math:`((1+\epsilon)/(1-\epsilon))^2`, whatever the conditioning of A.

    **Shift safeguard.** :math:`\tilde H` is singular when A is rank-deficient and the
    ridge is 0, and can be indefinite when the low-rank core C is. The factorization
    then adds the smallest tried multiple :math:`\tau` of I that makes the Cholesky
    succeed (:math:`\tau = 10^{-10}\max_i \tilde H_{ii}`, growing tenfold per try, see
    :func:`~fastnewton.linalg.shifted_cholesky`); ``shift`` records it (0.0 when the
    factorization needed none). A shifted preconditioner is still SPD, so CG stays
    well defined; it only converges more slowly along the shifted directions.

    Parameters
    ----------
    A : sparse matrix, ndarray (n, d) or ``fastnewton.linalg.Design``
    parts : DiagLowRank
    sketch : str or sketch object
        A sketch with ``apply(A, row_weights=..., out=...)`` and ``shape == (m, n)``, or a
        name from ``fastnewton.sketch.SKETCHES`` (then drawn with ``sketch_size`` and
        ``seed``). The sketch is kept for every :meth:`update`.
    ridge : float or ndarray (d,)
        Added to the diagonal (a vector: a per-coordinate ridge).
    sketch_size : int, optional
        Rows of a sketch given by name; default :func:`default_preconditioner_size`.
    seed : None, int, SeedSequence or Generator
        Randomness of a sketch given by name.

    Attributes
    ----------
    shift : float
        Diagonal shift of the current factorization.
    n_factorizations : int
        How many times the sketched Hessian was factored (1 + number of updates).
    sketch_time, factor_time : float
        Seconds spent in the last sketch and the last factorization.

    Examples
    --------
    >>> import numpy as np
    >>> from fastnewton.hessian import DiagLowRank, SketchPreconditioner
    >>> A = np.random.default_rng(0).standard_normal((500, 5))
    >>> M = SketchPreconditioner(A, DiagLowRank(np.ones(500)), "countsketch", seed=0)
    >>> M.shape
    (5, 5)
    """

    def __init__(self, A, parts, sketch, ridge=0.0, *, sketch_size=None, seed=None):
        from ..sketch import make_sketch

        design = as_design(A)
        n, d = design.n, design.d
        if isinstance(sketch, str):
            m = default_preconditioner_size(n, d) if sketch_size is None else sketch_size
            check_scalar(m, "sketch_size", low=1, integer=True)
            sketch = make_sketch(sketch, int(m), n, seed=seed)
        else:
            sketch = make_sketch(sketch, None, n)
        self.design = design
        self.sketch = sketch
        self.sketch_size = int(sketch.shape[0])
        self._buf = np.empty((self.sketch_size, d))
        self._G = None
        self._fac = None
        self.shift = 0.0
        self.n_factorizations = 0
        self.sketch_time = self.factor_time = 0.0
        self.ridge = check_ridge(ridge, d)
        super().__init__(dtype=np.dtype(np.float64), shape=(d, d))
        self.update(parts)

    _what = "the preconditioner"

    def update(self, parts=None, ridge=None):
        """Re-factor for new Hessian parts and/or a new ridge; returns ``self``.

        ``parts`` given: re-sketch :math:`D_+^{1/2} A` for the new beta with the same
        sketch (and its cached layout of A), one pass over A. Only ``ridge`` given:
        re-factor the stored sketched Hessian plus the new ridge (no pass over A).
        """
        if parts is not None:
            _check_parts(self.design, parts)
            t0 = time.perf_counter()
            self._G = sketched_gram(self.design, parts, self.sketch, ridge=0.0, out=self._buf)
            self.sketch_time = time.perf_counter() - t0
        if ridge is not None:
            self.ridge = check_ridge(ridge, self.shape[0])
        if self._G is None:
            raise ValidationError("update needs parts the first time")
        t0 = time.perf_counter()
        H = self._G.copy()
        H[np.diag_indices_from(H)] += self.ridge  # a float or a per-coordinate vector
        self._fac = shifted_cholesky(H)
        self.shift = float(self._fac.shift)
        self.n_factorizations += 1
        self.factor_time = time.perf_counter() - t0
        return self

    def _matvec(self, r):
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        return self._fac.solve(r)

    def _matmat(self, R):
        return self._fac.solve(np.asarray(R, dtype=np.float64))

    def _rmatvec(self, r):
        return self._matvec(r)

    def __repr__(self):
        return (f"SketchPreconditioner(d={self.shape[0]}, sketch_size={self.sketch_size}, "
                f"ridge={ridge_scalar(self.ridge):g}, shift={self.shift:g})")
