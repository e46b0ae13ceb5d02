"""se(3)*: the heavy top's Lie-Poisson structure, state (L, Gamma)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ..ir.ops import Op
from .base import AbstractStructure, like, poisson_j, state_pair


@dataclasses.dataclass(frozen=True)
class SE3(AbstractStructure):
    """Lie-Poisson structure on se(3)* (the heavy top in the body frame):
    L' = L x dH/dL + Gamma x dH/dGamma, Gamma' = Gamma x dH/dL.
    State: ``(L, Gamma)``, each (3,). Casimirs: Gamma.Gamma and L.Gamma.
    Reference: Marsden & Ratiu (1999), sec. 15.8; Hairer, Lubich & Wanner (2006), sec. VII.5."""

    name: str = "se3"
    parts: tuple[str, ...] = ("L", "Gamma")

    def check_state(self, state) -> tuple:
        L, G = state_pair(state, ("L", "Gamma"), self.name, "the heavy top's state is (L, Gamma), each (3,)")
        if L.shape != (3,):
            raise ValueError(f"state: L and Gamma must both be (3,) for structure='se3', got {L.shape}; "
                             "vmap for ensembles")  # fmt: skip
        return L, G

    def emit_flow(self, b, tr, grads, regs):
        L, G = regs
        a, c = poisson_j(b, grads[0], L, "LIE", L), poisson_j(b, grads[1], G, "LIE", G)
        ref = like(b, c)
        f0 = b.emit(Op.FMA, b.fresh("F"), (a, 1.0, c), dtype=ref.dtype, shape=ref.shape, comment="Ldot")
        return [f0, poisson_j(b, grads[0], G, "LIE", G)]

    def casimirs(self, parts):
        L, G = parts
        return (jnp.sum(G * G, axis=-1), jnp.sum(L * G, axis=-1))
