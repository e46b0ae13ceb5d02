"""Adjoint methods for long time-stepping loops: `solve(step, z0, dt, params, steps=..., adjoint=...)`."""

from .solve import ADJOINTS as ADJOINTS
from .solve import solve as solve

#: adjoints that rebuild states with step(-dt): only valid for time-symmetric methods
NEEDS_SYMMETRIC = ("guarded", "reversible")


def resolve(adjoint: str | None, *, symmetric: bool, method_name: str) -> str:
    """The adjoint to use for a method: None -> "guarded" if the method is symmetric, else "checkpointed".

    Raises ValueError for an unknown name (listing ADJOINTS) and for "reversible"/"guarded" with a method
    that is not time-symmetric (step(-dt) does not undo step(dt), so the backward reconstruction is wrong).
    """
    if adjoint is None:
        return "guarded" if symmetric else "checkpointed"
    if not isinstance(adjoint, str) or adjoint not in ADJOINTS:
        raise ValueError(
            f"adjoint must be None or one of {ADJOINTS}, got {adjoint!r}. Use 'guarded' for time-symmetric "
            "methods (leapfrog, yoshida4, implicit_midpoint, ...), 'checkpointed' for any other method, "
            "'direct' for short runs."
        )
    if adjoint in NEEDS_SYMMETRIC and not symmetric:
        raise ValueError(
            f"adjoint={adjoint!r} needs a time-symmetric method (step(-dt) undoing step(dt)), but method "
            f"{method_name!r} is not symmetric: its gradients would be wrong. Use adjoint='checkpointed' "
            "(exact, O(sqrt(steps)) memory) or adjoint='direct' (exact, stores every step), or leave adjoint=None."
        )
    return adjoint
