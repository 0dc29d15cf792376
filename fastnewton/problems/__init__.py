"""Problem families: each supplies its loss, gradient and Hessian parts in z = A x."""

from ._base import Problem, REQUIRED_METHODS
from .exp import ExpRegression, convexity_bound

__all__ = ["Problem", "ExpRegression", "convexity_bound", "PROBLEMS", "REQUIRED_METHODS"]

#: Registry of the problem families by short name.
PROBLEMS = {"exp": ExpRegression}
