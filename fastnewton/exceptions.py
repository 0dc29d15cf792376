"""Error and warning classes of fastnewton."""

__all__ = [
    "FastNewtonError",
    "ValidationError",
    "NonFiniteError",
    "MemoryBudgetError",
    "ConvergenceWarning",
    "NonConvexWarning",
    "NumericalWarning",
]


class FastNewtonError(Exception):
    """Base class of the errors fastnewton raises itself."""


class ValidationError(FastNewtonError, ValueError):
    """An argument has the right type but a bad value (shape, finiteness, index range...)."""


class NonFiniteError(ValidationError):
    """A loss's derivatives are not finite at the point where they were requested (e.g. a
    user's loss evaluated outside its domain); the message names the function and the
    sample."""


class MemoryBudgetError(FastNewtonError, MemoryError):
    """A method would need more memory than is available (checked before allocating).

    The message says how much the method needs, how much is available and which method
    fits (e.g. ``method='wide'``). A ``MemoryError``, so ``except MemoryError`` catches it.
    """


class ConvergenceWarning(UserWarning):
    """A solver stopped before meeting its tolerance; the result says how far it got."""


class NonConvexWarning(UserWarning):
    """The problem as posed is not guaranteed to be convex (e.g. ``w`` below the bound)."""


class NumericalWarning(UserWarning):
    """A numerical safeguard was triggered (shifted factorization, overflow, ...)."""
