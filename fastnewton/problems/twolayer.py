"""Two-layer regression with a softmax first layer (after arXiv 2311.15390)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_vector
from ..exceptions import ValidationError
from ._base import Problem
from ._softmax import combine_shifted

__all__ = ["TwoLayerRegression", "ACTIVATIONS"]


def _sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


#: sigma -> (sigma, sigma', sigma'')
ACTIVATIONS = {
    "identity": (lambda t: t, np.ones_like, np.zeros_like),
    "relu": (lambda t: np.maximum(t, 0.0), lambda t: (t > 0).astype(np.float64), np.zeros_like),
    "softplus": (lambda t: np.logaddexp(0.0, t), _sigmoid,
                 lambda t: _sigmoid(t) * _sigmoid(-t)),
    "exp": (np.exp, np.exp, np.exp),
}


class _Stats:
    """Global statistics: max shift M, normalizer S, t = Hᵀs and what follows from t."""

    __slots__ = ("M", "S", "t", "loss", "e", "lam", "sg")

    def __init__(self, combined, b, sigma):
        f, df, d2f = ACTIVATIONS[sigma]
        self.M, self.S = combined[0], combined[1]
        self.t = combined[2:] / self.S
        r = f(self.t) - b
        self.loss = 0.5 * float(r @ r)
        dft = df(self.t)
        self.e = r * dft  # dℓ/dt
        self.lam = dft * dft + r * d2f(self.t)  # Λ
        self.sg = float(self.e @ self.t)  # <s, g> with g = H e


class TwoLayerRegression(Problem):
    r"""Two-layer regression with a softmax first layer and a fixed second layer H.

    .. math::
        L(x) = \tfrac12\|\sigma(H^T \mathrm{softmax}(C x)) - b\|^2 + \tfrac12\|w\circ(C x)\|^2
        + \tfrac12\lambda\|x\|^2.

    With :math:`s = \mathrm{softmax}(z)`, :math:`t = H^T s`, :math:`e = (\sigma(t) - b)\circ\sigma'(t)`,
    :math:`g = H e`, :math:`\Lambda = \mathrm{diag}(\sigma'(t)^2 + (\sigma(t) - b)\circ\sigma''(t))`:
    :math:`\nabla_z\ell = s\circ g - \langle s,g\rangle s`, and the Hessian in z is
    :math:`\mathrm{diag}(s\circ g - \langle s,g\rangle s) + U \hat C U^T` with
    :math:`U = [\mathrm{diag}(s)(H - 1 t^T),\ s\circ g,\ s]` (rank m + 2) and
    :math:`\hat C = \mathrm{blockdiag}(\Lambda, [[0, -1], [-1, 2\langle s,g\rangle]])` (MATH.md).

    Parameters
    ----------
    C : sparse matrix or array, shape (n, d)
        The design (first layer).
    H : array_like, shape (n, m)
        Fixed second-layer matrix (dense; m small).
    b : array_like, shape (m,)
    sigma : {"identity", "relu", "softplus", "exp"}
    w : None, float or array_like (n,)
    lam : float

    Notes
    -----
    The loss is non-convex in general; with m < d its minimizers form a manifold unless
    ``lam > 0``. relu has no second derivative at 0 (σ'' = 0 is used).

    Examples
    --------
    >>> import numpy as np, fastnewton as fn
    >>> rng = np.random.default_rng(0)
    >>> C, H = rng.standard_normal((300, 5)), rng.standard_normal((300, 2))
    >>> prob = fn.TwoLayerRegression(C, H, np.array([0.3, -0.2]), lam=1e-3)
    >>> bool(fn.minimize(prob).success)
    True
    """

    def __init__(self, C, H, b, sigma="softplus", w=None, lam=0.0):
        if not isinstance(sigma, str) or sigma not in ACTIVATIONS:
            raise ValueError(f"sigma must be one of {sorted(ACTIVATIONS)}, got {sigma!r}")
        super().__init__(C, w=w, lam=lam)
        H = H.toarray() if sp.issparse(H) else np.asarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[0] != self.n:
            raise ValidationError(f"H must have shape ({self.n}, m) to match C's {self.n} rows, "
                                  f"got {H.shape}")
        if not np.isfinite(H).all():
            raise ValidationError("H contains NaN or infinite values")
        self.H = np.ascontiguousarray(H, dtype=np.float64)
        self.m = H.shape[1]
        self.b = check_vector(b, self.m, "b")
        self.sigma = sigma

    def partial_stats(self, z_blk, rows):
        if z_blk.shape[0] == 0:
            return np.r_[-np.inf, np.zeros(1 + self.m)]
        mx = float(z_blk.max())
        e = np.exp(z_blk - mx)
        return np.r_[mx, e.sum(), e @ self.H[rows]]

    def combine_stats(self, partials):
        return _Stats(combine_shifted(partials, np.ones(1 + self.m)), self.b, self.sigma)

    def stats_loss(self, stats):
        return stats.loss

    def _sg(self, z_blk, rows, stats):
        s = np.exp(z_blk - stats.M) / stats.S
        return s, self.H[rows] @ stats.e

    def block_loss(self, z_blk, rows, stats):
        return 0.0

    def block_loss_grad(self, z_blk, rows, stats):
        s, g = self._sg(z_blk, rows, stats)
        return 0.0, s * g - stats.sg * s

    def block_parts(self, z_blk, rows, stats):
        s, g = self._sg(z_blk, rows, stats)
        beta = s * g - stats.sg * s
        U = np.empty((z_blk.shape[0], self.m + 2))
        U[:, :self.m] = s[:, None] * (self.H[rows] - stats.t)
        U[:, self.m] = s * g
        U[:, self.m + 1] = s
        Ch = np.zeros((self.m + 2, self.m + 2))
        Ch[np.arange(self.m), np.arange(self.m)] = stats.lam
        Ch[self.m:, self.m:] = [[0.0, -1.0], [-1.0, 2.0 * stats.sg]]
        return beta, U, Ch
