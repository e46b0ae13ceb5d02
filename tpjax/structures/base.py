"""AbstractStructure: what a Poisson structure owns -- its state parts, checks, packing, flow and Casimirs.

A structure is the J of z' = J(z) grad H(z). Everything that depends on which structure a run has lives on
its object: the names of the state parts (and so the TP-IR pointers ``ptr_<part>``), how a user's state is
checked and split into parts and packed back, the POISSON_J instructions of the flow, the Casimirs a
trajectory reports and the method used when none is given. Code outside ``tpjax/structures`` asks the
object; it never compares structure names.
"""

from __future__ import annotations

import abc
import numbers

import jax
import jax.numpy as jnp

from ..ir.ops import Op


class AbstractStructure(abc.ABC):
    """A Poisson structure. Subclasses are final and small: parts, checks, flow, Casimirs.

    Attributes:
      name: shown in listings (``structure=<name>``) and errors.
      parts: the names of the state parts, in order (the TP-IR pointers are ``ptr_<part>``).
      canonical: True when the state is (q, p) with J = [[0, I], [-I, 0]], so kick/drift splittings apply.
      default_method: the METHODS name used when ``method`` is not given (``default_method_for`` may pick
        a better one for a given H).
    """

    name: str
    parts: tuple[str, ...]
    canonical: bool = False
    default_method: str = "implicit_midpoint"

    @property
    def ptrs(self) -> tuple[str, ...]:
        """The TP-IR pointer of each state part."""
        return tuple(f"ptr_{n}" for n in self.parts)

    def default_method_for(self, H, parts: tuple, precision=None) -> str:
        """The METHODS name to use for ``H`` at ``parts`` when ``method`` is not given."""
        return self.default_method

    @abc.abstractmethod
    def check_state(self, state) -> tuple:
        """Validate a user's state for ONE system and return its parts (arrays), in ``parts`` order."""

    def wrap_hamiltonian(self, H, state):
        """H as a function of the state parts (identity unless the structure reshapes the user's state)."""
        return H

    def pack(self, parts: tuple, state):
        """The parts back in the form the user passed (``state`` is the original argument)."""
        if len(self.parts) == 1:
            return parts[0]
        if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple
            return type(state)(*parts)
        return type(state)(parts) if isinstance(state, tuple | list) else tuple(parts)

    @abc.abstractmethod
    def emit_flow(self, b, tr, grads: list, regs: list) -> list:
        """Emit the POISSON_J instructions of z' = J(z) grad H; return one flow register per part."""

    def casimirs(self, parts: tuple):
        """The structure's Casimirs at saved states (each part has a leading time axis); None if none."""
        return None

    def check(self, tr) -> None:  # noqa: B027 (a hook: most structures need no check)
        """Checks that need the traced H (e.g. that a user's J is skew); raise a clear error on failure."""

    def nan_hint(self, tr) -> str | None:
        """Another reason a run of this structure can end in NaN (appended to a solver's error), or None."""
        return None

    def __str__(self) -> str:
        return self.name


def state_array(x, name: str):
    """One state part as a floating array; numbers become arrays of the default float dtype."""
    if not hasattr(x, "dtype"):
        if isinstance(x, numbers.Number) and not isinstance(x, bool):
            x = jnp.asarray(x, dtype=jax.dtypes.canonicalize_dtype(float))
        else:
            raise TypeError(f"state {name} must be an array or a number, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"state {name} must be floating point, got {x.dtype}; e.g. {name}.astype(jnp.float32)")
    return x


def state_pair(state, names: tuple[str, str], structure: str, hint: str) -> tuple:
    """Two state parts of one shape and dtype (``(q, p)``, ``(L, Gamma)``)."""
    if not isinstance(state, tuple | list) or len(state) != 2:
        got = type(state).__name__ + (f" of length {len(state)}" if isinstance(state, tuple | list) else "")
        raise TypeError(f"state must be a ({names[0]}, {names[1]}) pair for structure={structure!r}, got {got}; {hint}")
    a, b = (state_array(x, n) for x, n in zip(state, names, strict=True))
    if a.shape != b.shape:
        raise ValueError(f"state: {names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"state: {names[0]} and {names[1]} must have the same dtype, got {a.dtype} and {b.dtype}; "
                         "cast one")  # fmt: skip
    return a, b


def like(b, reg: str):
    """The instruction that defines ``reg`` (for its dtype and shape)."""
    return next(i for i in b.instrs if reg in i.dst)


def poisson_j(b, g: str, like_reg: str, kind: str, *extra, comment: str = "") -> str:
    """Emit ``POISSON_J F, g[, extra], type=kind`` typed like ``like_reg``."""
    ref = like(b, like_reg)
    return b.emit(Op.POISSON_J, b.fresh("F"), (g, *extra), (("type", kind),), dtype=ref.dtype, shape=ref.shape,
                  comment=comment)  # fmt: skip
