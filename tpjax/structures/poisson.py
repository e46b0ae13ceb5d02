"""A generic Poisson structure given by the user's function J(z)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractStructure, like, state_array


@dataclasses.dataclass(frozen=True)
class Poisson(AbstractStructure):
    """z' = J(z) dH/dz for a user-supplied skew-symmetric J: R^n -> R^(n x n) (POISSON_J type MATRIX).

    State: ``z`` of shape (n,). J is traced into the flow program (its constants become C registers like
    H's). Skewness is *proven* from J's jaxpr when it can be (``forms.proven_skew``: constant matrices,
    hat maps, (A - A^T)/2 and other forms whose J + J^T cancels symbolically, traced parameters
    included); otherwise the flow program itself checks max|J + J^T| <= 100 eps max(1, max|J|) at every
    evaluation and is NaN where it fails, so a J that is skew only at some states never integrates
    silently. A concrete initial state is also checked numerically (the error gives the asymmetry).
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

    def proven_skew(self, aval) -> bool:
        """Is J(z) + J(z)^T == 0 for every z, as J's jaxpr shows?"""
        from .forms import proven_skew

        closed = jax.make_jaxpr(lambda z: self.J(z))(aval)
        consts = [None if isinstance(c, jax.core.Tracer) else np.asarray(c) for c in closed.consts]
        return proven_skew(closed.jaxpr, consts, tuple(aval.shape), _rtol(aval.dtype))

    def nan_hint(self, tr) -> str | None:
        if self.proven_skew(tr.avals[0]):
            return None
        return ("Or: structure J(z) is not skew-symmetric at a state the run reached. tpjax could not prove "
                "J + J^T = 0 from J's jaxpr, so it checks J at run time and the flow is NaN where the check "
                "fails; build J from skew parts (e.g. (A - A.T) / 2 or hat(v)).")  # fmt: skip

    def emit_flow(self, b, tr, grads, regs):
        from ..frontend.from_jaxpr import lower_jaxpr
        from ..ir.ops import Op

        J = self.J if self.proven_skew(tr.avals[0]) else _guarded(self.J, _rtol(tr.avals[0].dtype))
        closed = jax.make_jaxpr(lambda *z: J(*z))(*tr.avals)
        phase, stage = b.phase, b.stage
        b.phase, b.stage = "forward", "flow: J(z)"
        (Jr,) = lower_jaxpr(b, closed.jaxpr, closed.consts, regs)
        b.phase, b.stage = phase, stage
        ref = like(b, regs[0])
        return [b.emit(Op.POISSON_J, b.fresh("F"), (grads[0], Jr), (("type", "MATRIX"),), dtype=ref.dtype,
                       shape=ref.shape, comment="zdot = J(z) dH/dz")]  # fmt: skip


def _rtol(dtype) -> float:
    return 100 * float(jnp.finfo(dtype).eps)


def _guarded(J, rtol):
    """J(z), or NaN where J(z) is not skew (for a J whose skewness its jaxpr does not prove)."""

    def guarded(z):
        m = jnp.asarray(J(z))
        ok = jnp.max(jnp.abs(m + m.T)) <= rtol * jnp.maximum(1.0, jnp.max(jnp.abs(m)))
        return jnp.where(ok, m, jnp.nan)

    return guarded
