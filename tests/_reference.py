"""Independent dense-numpy oracles for the tests (no fastnewton code is used here).

The exp / cosh / sinh regression objective

    L(x) = ½‖f(A x) − b‖² + ½‖w∘(A x)‖² + ½ lam ‖x‖²

is written directly in numpy on a dense A, with its gradient and Hessian derived by hand:

    r = f(z) − b,   ∇L = Aᵀ(f'(z)∘r + w²∘z) + lam x,
    ∇²L = Aᵀ diag(f'(z)² + f''(z)∘r + w²) A + lam I,

plus central finite differences and a reference minimizer (dense damped Newton with an
Armijo line search, eigenvalue-shifted where the Hessian is indefinite).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# f, f', f''
FUNCS = {
    "exp": (np.exp, np.exp, np.exp),
    "cosh": (np.cosh, np.sinh, np.cosh),
    "sinh": (np.sinh, np.cosh, np.sinh),
}


def dense(A):
    """A as a dense float64 array (sparse or dense input, any real dtype)."""
    if sp.issparse(A):
        A = A.toarray()
    return np.asarray(A, dtype=np.float64)


def weights(w, n):
    """A scalar or vector w as an n-vector of float64."""
    return np.broadcast_to(np.asarray(w, dtype=np.float64), (n,)).copy()


class DenseExpRegression:
    """The objective, gradient and Hessian of exp/cosh/sinh regression, dense numpy."""

    def __init__(self, A, b, w, f="exp", lam=0.0):
        self.A = dense(A)
        self.n, self.d = self.A.shape
        self.b = np.asarray(b, dtype=np.float64)
        self.w2 = weights(w, self.n) ** 2
        self.f, self.df, self.d2f = FUNCS[f]
        self.lam = float(lam)

    def fun(self, x):
        z = self.A @ x
        with np.errstate(over="ignore", invalid="ignore"):
            r = self.f(z) - self.b
            val = 0.5 * r @ r + 0.5 * self.w2 @ (z * z) + 0.5 * self.lam * x @ x
        return float(val) if np.isfinite(val) else np.inf

    def grad(self, x):
        z = self.A @ x
        r = self.f(z) - self.b
        return self.A.T @ (self.df(z) * r + self.w2 * z) + self.lam * x

    def beta(self, x):
        z = self.A @ x
        r = self.f(z) - self.b
        return self.df(z) ** 2 + self.d2f(z) * r + self.w2

    def hess(self, x):
        beta = self.beta(x)
        return self.A.T @ (beta[:, None] * self.A) + self.lam * np.eye(self.d)


def fd_gradient(fun, x, h=1e-6):
    """Central-difference gradient of a scalar function (step h * max(1, |x_i|))."""
    x = np.asarray(x, dtype=np.float64)
    g = np.empty_like(x)
    for i in range(x.size):
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = hi
        g[i] = (fun(x + e) - fun(x - e)) / (2 * hi)
    return g


def fd_jacobian(grad, x, h=1e-6):
    """Central-difference Jacobian of a vector function (column i = d grad / d x_i)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = hi
        cols.append((grad(x + e) - grad(x - e)) / (2 * hi))
    return np.column_stack(cols)


def newton_minimize(prob, x0, *, gtol=1e-13, maxiter=200, c1=1e-4):
    """Dense damped Newton with Armijo backtracking, to ‖∇L‖ <= gtol ‖∇L(x0)‖.

    Indefinite Hessians are shifted to have smallest eigenvalue >= 1e-8 ‖H‖ (modified
    Newton), trial points with an infinite objective are rejected. Stops early when the
    line search cannot decrease the objective any more (rounding level reached).

    Returns (x, relative gradient norm reached, iterations).
    """
    x = np.array(x0, dtype=np.float64)
    f, g = prob.fun(x), prob.grad(x)
    g0 = np.linalg.norm(g)
    if g0 == 0.0:
        return x, 0.0, 0
    for it in range(1, maxiter + 1):
        H = prob.hess(x)
        evals, evecs = np.linalg.eigh(H)
        floor = 1e-8 * max(abs(evals).max(), 1e-300)
        evals = np.maximum(evals, floor) if evals.min() < floor else evals
        p = -evecs @ ((evecs.T @ g) / evals)
        gp = g @ p
        t = 1.0
        accepted = False
        for _ in range(80):
            x_t = x + t * p
            f_t = prob.fun(x_t)
            if np.isfinite(f_t) and f_t <= f + c1 * t * gp:
                accepted = True
                break
            if np.isfinite(f_t) and abs(f_t - f) <= 1e-15 * abs(f):
                # rounding level: accept if the gradient decreases
                if np.linalg.norm(prob.grad(x_t)) < np.linalg.norm(g):
                    accepted = True
                    break
            t *= 0.5
        if not accepted:
            break
        x, f, g = x_t, prob.fun(x_t), prob.grad(x_t)
        if np.linalg.norm(g) <= gtol * g0:
            break
    return x, float(np.linalg.norm(g) / g0), it


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ (or ‖a‖ when b = 0)."""
    nb = np.linalg.norm(b)
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / (nb if nb else 1.0))
