"""Diagonal-plus-low-rank Hessians: exact or sketched assembly, operators, preconditioners."""

from ._diagonal import DiagonalPreconditioner, ScaledNystromPreconditioner, hessian_diagonal
from ._gram import gram, sketched_gram, weighted_gram
from ._operator import HessianOperator
from ._parts import DiagLowRank
from ._precond import SketchPreconditioner

__all__ = ["DiagLowRank", "gram", "sketched_gram", "weighted_gram", "HessianOperator",
           "SketchPreconditioner", "hessian_diagonal", "DiagonalPreconditioner",
           "ScaledNystromPreconditioner"]
