"""fastnewton: approximate Newton methods for large sparse data.

Minimize ``L(x) = loss(A x) + ½‖w∘(A x)‖² + ½ lam ‖x‖²`` for the loss families of the
attention-regression papers by Newton steps that cost a few passes over A plus a
d x d factorization. See ``fastnewton.minimize``.
"""

from ._numba_cache import configure_numba_cache as _configure_numba_cache

_configure_numba_cache()  # before any kernel module is imported (read-only installs)

from . import datasets, hessian, linalg, problems, sketch
from .exceptions import (ConvergenceWarning, FastNewtonError, MemoryBudgetError,
                         NonConvexWarning, NonFiniteError, NumericalWarning, ValidationError)
from .newton import NewtonResult, minimize
from .problems import (AttentionKernelRegression, AttentionRegression, CopyrightRegression, ExpRegression, MultiSoftmaxRegression,
                       GLMRegression, SeparableLoss,
                       RescaledRegression,
                       ResNetSoftmaxRegression, SoftmaxRegression, TwoLayerRegression)

__version__ = "0.1.0"

__all__ = [
    "minimize",
    "NewtonResult",
    "ExpRegression",
    "SoftmaxRegression",
    "RescaledRegression",
    "ResNetSoftmaxRegression",
    "CopyrightRegression",
    "TwoLayerRegression",
    "MultiSoftmaxRegression",
    "AttentionRegression",
    "AttentionKernelRegression",
    "GLMRegression",
    "SeparableLoss",
    "datasets",
    "hessian",
    "linalg",
    "problems",
    "sketch",
    "ConvergenceWarning",
    "FastNewtonError",
    "NonConvexWarning",
    "NumericalWarning",
    "ValidationError",
    "NonFiniteError",
    "MemoryBudgetError",
    "__version__",
]
