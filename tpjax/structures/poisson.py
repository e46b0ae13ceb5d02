"""A generic Poisson structure given by the user's function J(z)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from .base import AbstractStructure, like, state_array


@dataclasses.dataclass(frozen=True)
class Poisson(AbstractStructure):
    """z' = J(z) dH/dz for a user-supplied skew-symmetric J: R^n -> R^(n x n) (POISSON_J type MATRIX).

    State: ``z`` of shape (n,). J is traced into the flow program (its constants become C registers like
    H's) and checked for skewness at the initial state when that is concrete.
    """

    J: Callable
    name: str = "poisson"
    parts: tuple[str, ...] = ("z",)

    def check_state(self, state) -> tuple:
        z = state_array(state, "z")
        if z.ndim != 1:
            raise ValueError(f"state z must be a vector (n,) for a generic Poisson structure J(z), got {z.shape}")
        from .lie_poisson import check_skew

        check_skew(self.J, z, name="structure J")
        return (z,)

    def emit_flow(self, b, tr, grads, regs):
        from ..frontend.from_jaxpr import lower_jaxpr
        from ..ir.ops import Op

        closed = jax.make_jaxpr(lambda *z: self.J(*z))(*tr.avals)
        phase, stage = b.phase, b.stage
        b.phase, b.stage = "forward", "flow: J(z)"
        (J,) = lower_jaxpr(b, closed.jaxpr, closed.consts, regs)
        b.phase, b.stage = phase, stage
        ref = like(b, regs[0])
        return [b.emit(Op.POISSON_J, b.fresh("F"), (grads[0], J), (("type", "MATRIX"),), dtype=ref.dtype,
                       shape=ref.shape, comment="zdot = J(z) dH/dz")]  # fmt: skip
