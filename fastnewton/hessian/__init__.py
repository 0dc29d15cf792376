"""Diagonal-plus-low-rank Hessians and their exact or sketched assembly."""

from ._gram import gram, sketched_gram, weighted_gram
from ._parts import DiagLowRank

__all__ = ["DiagLowRank", "gram", "sketched_gram", "weighted_gram"]
