"""Independent references for the family tests: losses and gradients written directly in
numpy (chain rule by hand, no use of fastnewton), minimized by a dense damped Newton
method whose Hessian is the central finite difference of the reference gradient."""

import numpy as np
import scipy.sparse as sp


def _dense(A):
    """A as a float64 CSR array or ndarray (kept sparse: the reference only needs A @ x)."""
    return sp.csr_array(A, dtype=np.float64) if sp.issparse(A) else np.asarray(A, dtype=np.float64)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _ridge(A, w, lam, x, z):
    w2 = 0.0 if w is None else np.asarray(w, dtype=float) ** 2
    return 0.5 * float(np.sum(w2 * z * z)) + 0.5 * lam * float(x @ x), w2 * z


def softmax_loss(A, b, w=None, lam=0.0):
    """L(x) = ½‖softmax(Ax) − b‖² + ½‖w∘Ax‖² + ½ lam‖x‖²; returns fun(x) -> (L, ∇L)."""
    A = _dense(A)

    def fg(x):
        z = A @ x
        s = _softmax(z)
        r = s - b
        reg, gz = _ridge(A, w, lam, x, z)
        # d/dz of ½‖s − b‖²: (diag(s) − s sᵀ) r
        return 0.5 * r @ r + reg, A.T @ (s * r - s * (s @ r) + gz) + lam * x
    return fg


_F = {"exp": (np.exp, np.exp), "cosh": (np.cosh, np.sinh), "sinh": (np.sinh, np.cosh)}


def rescaled_loss(A, b, f, w=None, lam=0.0):
    """½‖f(z) − (1ᵀf(z)) b‖² + ridge terms."""
    A = _dense(A)
    f0, f1 = _F[f]

    def fg(x):
        z = A @ x
        fz = f0(z)
        r = fz - fz.sum() * b
        dfz = r - (b @ r)  # derivative of ½‖r‖² w.r.t. f(z), r = (I − b 1ᵀ) f
        reg, gz = _ridge(A, w, lam, x, z)
        return 0.5 * r @ r + reg, A.T @ (f1(z) * dfz + gz) + lam * x
    return fg


def resnet_loss(A, b, w=None, lam=0.0):
    """½‖(e^z + z)/sum(e^z + z) − b‖² + ridge terms (inf where the sum is <= 0)."""
    A = _dense(A)

    def fg(x):
        z = A @ x
        v = np.exp(z) + z
        a = v.sum()
        if a <= 0:
            return np.inf, None
        s = v / a
        r = s - b
        q = np.exp(z) + 1.0
        reg, gz = _ridge(A, w, lam, x, z)
        # ds/dz = (diag(q) − s qᵀ)/a  =>  (ds/dz)ᵀ r = (q∘r − q (s·r))/a
        return 0.5 * r @ r + reg, A.T @ ((q * r - q * (s @ r)) / a + gz) + lam * x
    return fg


def fd_hessian(fg, x, h=1e-5):
    d = x.size
    H = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h * max(1.0, abs(x[j]))
        H[:, j] = (fg(x + e)[1] - fg(x - e)[1]) / (2 * e[j])
    return 0.5 * (H + H.T)


def damped_newton(fg, x0, tol=1e-11, maxiter=100, fresh=4):
    """Dense damped Newton to ‖g‖ <= tol‖g0‖: FD Hessian (shifted to PD), Armijo
    backtracking. To save gradient evaluations the Hessian is re-estimated only on the
    first ``fresh`` steps and after a step that needed backtracking; a frozen Hessian
    still converges (linearly) to a zero of the exact reference gradient."""
    x = np.array(x0, dtype=float)
    f, g = fg(x)
    g0 = np.linalg.norm(g)
    t = 1.0
    for it in range(maxiter):
        if np.linalg.norm(g) <= tol * g0:
            break
        damped_newton.nit = it + 1
        if it < fresh or t < 1.0:
            H = fd_hessian(fg, x)
        ev = np.linalg.eigvalsh(H)
        shift = 0.0 if ev[0] > 1e-10 * ev[-1] else 1e-8 * abs(ev[-1]) - ev[0]
        p = -np.linalg.solve(H + shift * np.eye(x.size), g)
        t = 1.0
        while True:
            f_new, g_new = fg(x + t * p)
            if f_new <= f + 1e-4 * t * (g @ p) or (np.isfinite(f_new) and t < 1e-12):
                break
            if np.isfinite(f_new) and abs(f_new - f) <= 1e-15 * abs(f) and \
                    np.linalg.norm(g_new) < np.linalg.norm(g):
                break
            t *= 0.5
            if t < 1e-14:
                return x
        x, f, g = x + t * p, f_new, g_new
    return x


def copyright_loss(A1, b1, A2, b2, gamma, w, lam=0.0):
    """½‖softmax(A1x) − b1‖² + γ / ½‖softmax(A2x) − b2‖² + ½‖w∘[A1;A2]x‖² + ½ lam‖x‖²."""
    A1, A2 = _dense(A1), _dense(A2)
    n1 = A1.shape[0]
    w = np.broadcast_to(np.asarray(w, dtype=float), (n1 + A2.shape[0],))

    def part(A, b, x):
        z = A @ x
        s = _softmax(z)
        r = s - b
        return 0.5 * r @ r, s * r - s * (s @ r), z

    def fg(x):
        l1, g1, z1 = part(A1, b1, x)
        l2, g2, z2 = part(A2, b2, x)
        w1, w2 = w[:n1] ** 2, w[n1:] ** 2
        f = l1 + gamma / l2 + 0.5 * (w1 @ (z1 * z1) + w2 @ (z2 * z2)) + 0.5 * lam * x @ x
        g = A1.T @ (g1 + w1 * z1) + A2.T @ (-gamma / l2 ** 2 * g2 + w2 * z2) + lam * x
        return f, g
    return fg


def twolayer_loss(C, H, b, sigma, w=None, lam=0.0):
    """½‖σ(Hᵀ softmax(C x)) − b‖² + ridge terms, σ = softplus or identity."""
    C = _dense(C)
    if sigma == "softplus":
        sig, dsig = (lambda t: np.log1p(np.exp(t))), (lambda t: 1 / (1 + np.exp(-t)))
    else:
        sig, dsig = (lambda t: t), np.ones_like

    def fg(x):
        z = C @ x
        s = _softmax(z)
        t = H.T @ s
        r = sig(t) - b
        ds = H @ (r * dsig(t))  # dℓ/ds
        reg, gz = _ridge(C, w, lam, x, z)
        return 0.5 * r @ r + reg, C.T @ (s * ds - s * (s @ ds) + gz) + lam * x
    return fg


def multisoftmax_loss(A1, A2, B, rescaled, lam):
    """½‖rowsoftmax(A1 X A2ᵀ) − B‖² (or the rescaled exp form) + ½ lam‖X‖², x = vec(X)."""
    A1, A2 = _dense(A1), _dense(A2)
    d = A1.shape[1]

    def fg(x):
        X = x.reshape(d, d)
        Z = A1 @ X @ A2.T
        if rescaled:
            E = np.exp(Z)
            R = E - E.sum(axis=1, keepdims=True) * B
            dE = R - (B * R).sum(axis=1, keepdims=True)  # dℓ/dE, row by row
            G = E * dE
        else:
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            S = E / E.sum(axis=1, keepdims=True)
            R = S - B
            G = S * R - S * (S * R).sum(axis=1, keepdims=True)
        return 0.5 * np.sum(R * R) + 0.5 * lam * x @ x, (A1.T @ G @ A2 + lam * X).ravel()
    return fg


def attention_loss(A1, A2, A3, B, lam):
    """½‖rowsoftmax(A1 X A2ᵀ) A3 Y − B‖² + ½ lam(‖X‖² + ‖Y‖²), theta = [vec X, vec Y]."""
    d, d3, m = A1.shape[1], A3.shape[1], B.shape[1]

    def fg(theta):
        X, Y = theta[:d * d].reshape(d, d), theta[d * d:].reshape(d3, m)
        Z = A1 @ X @ A2.T
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        S = E / E.sum(axis=1, keepdims=True)
        R = S @ A3 @ Y - B
        dS = R @ (A3 @ Y).T  # dℓ/dS
        G = S * dS - S * (S * dS).sum(axis=1, keepdims=True)
        f = 0.5 * np.sum(R * R) + 0.5 * lam * theta @ theta
        return f, np.concatenate([(A1.T @ G @ A2 + lam * X).ravel(),
                                  ((S @ A3).T @ R + lam * Y).ravel()])
    return fg
