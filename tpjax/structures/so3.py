"""so(3)*: the free rigid body's Lie-Poisson structure, J(L) = [L]x."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from .base import AbstractStructure, poisson_j, state_array


@dataclasses.dataclass(frozen=True)
class SO3(AbstractStructure):
    """Lie-Poisson structure on so(3)*: L' = L x dH/dL (POISSON_J type LIE; the ``lie_cross`` pass makes it
    LIE_CROSS). State: ``L`` of shape (3,) (vmap for ensembles). Casimir: |L|^2.
    Reference: Marsden & Ratiu, Introduction to Mechanics and Symmetry (1999), sec. 15.3."""

    name: str = "so3"
    parts: tuple[str, ...] = ("L",)

    def check_state(self, state) -> tuple:
        L = state_array(state, "L")
        if L.shape != (3,):
            raise ValueError(f"state L must have shape (3,) for structure='so3', got {L.shape}; vmap for ensembles")
        return (L,)

    def emit_flow(self, b, tr, grads, regs):
        return [poisson_j(b, grads[0], regs[0], "LIE", regs[0])]

    def casimirs(self, parts):
        return jnp.sum(parts[0] ** 2, axis=-1)
