"""The Newton driver's state between steps, for checkpoints and resumed solves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .exceptions import ValidationError

__all__ = ["NewtonState", "check_resume"]


@dataclass
class NewtonState:
    """Everything the driver carries from one step to the next (for checkpoints).

    ``x``, ``z = A x`` (updated incrementally, hence stored), objective ``f``, gradient
    ``g``, the initial gradient norm ``g0norm``, step and evaluation counts, the previous
    step ``prev_s`` and its image ``prev_As = A prev_s`` (or None), the method, the
    history lists, and the running bounds (relative to ‖z‖∞) on ``‖z - A x‖∞``
    (``drift``) and on the error of ``prev_As`` (``drift_step``) that decide when the
    driver recomputes z exactly (0 for states saved before they existed). Arrays are never modified in place by the driver. ``to_arrays`` /
    ``from_arrays`` convert to and from a dict of numpy arrays (for ``np.savez``, no
    pickle needed).
    """

    x: np.ndarray
    z: np.ndarray
    f: float
    g: np.ndarray
    g0norm: float
    nit: int
    nfev: int
    prev_s: object
    prev_As: object
    method: str
    history: dict
    drift: float = 0.0
    drift_step: float = 0.0

    def to_arrays(self):
        out = {"x": self.x, "z": self.z, "f": np.float64(self.f), "g": self.g,
               "g0norm": np.float64(self.g0norm), "nit": np.int64(self.nit),
               "nfev": np.int64(self.nfev), "method": np.str_(self.method),
               "drift": np.float64(self.drift), "drift_step": np.float64(self.drift_step)}
        if self.prev_s is not None:
            out["prev_s"], out["prev_As"] = self.prev_s, self.prev_As
        for key, val in self.history.items():
            out["history_" + key] = np.asarray(val, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, arrays):
        try:
            history = {k[len("history_"):]: list(np.asarray(arrays[k], dtype=np.float64))
                       for k in arrays if k.startswith("history_")}
            for key in ("inner_iters", "sketch_size"):
                history[key] = [int(v) for v in history.get(key, [])]
            has_prev = "prev_s" in arrays
            return cls(x=np.asarray(arrays["x"], dtype=np.float64),
                       z=np.asarray(arrays["z"], dtype=np.float64),
                       f=float(arrays["f"]), g=np.asarray(arrays["g"], dtype=np.float64),
                       g0norm=float(arrays["g0norm"]), nit=int(arrays["nit"]),
                       nfev=int(arrays["nfev"]),
                       prev_s=np.asarray(arrays["prev_s"], dtype=np.float64) if has_prev else None,
                       prev_As=np.asarray(arrays["prev_As"], dtype=np.float64) if has_prev else None,
                       method=str(arrays["method"]), history=history,
                       drift=float(arrays.get("drift", 0.0)),
                       drift_step=float(arrays.get("drift_step", 0.0)))
        except KeyError as exc:
            raise ValidationError(f"resume state lacks the entry {exc.args[0]!r}") from None


def check_resume(state, method, design):
    if not isinstance(state, NewtonState):
        raise TypeError(f"resume must be a NewtonState, got {type(state).__name__}")
    if state.method != method:
        raise ValidationError(f"resume state was made by method {state.method!r}, "
                              f"but this solve uses {method!r}")
    if state.x.shape != (design.d,) or state.z.shape != (design.n,) or state.g.shape != (design.d,):
        raise ValidationError(f"resume state has x of {state.x.shape[0]} and z of "
                              f"{state.z.shape[0]} entries; this problem has d={design.d}, "
                              f"n={design.n}")
    return state
