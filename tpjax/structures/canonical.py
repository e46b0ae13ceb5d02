"""The canonical structure: state (q, p), J = [[0, I], [-I, 0]]."""

from __future__ import annotations

import dataclasses

from .base import AbstractStructure, poisson_j, state_pair


@dataclasses.dataclass(frozen=True)
class Canonical(AbstractStructure):
    """Canonical Hamiltonian mechanics: q' = +dH/dp, p' = -dH/dq (POISSON_J types PASS and NEGATE).

    State: ``(q, p)``, two floating arrays of one shape and dtype. Every method applies; the kick/drift
    splittings need a separable H = T(p) + V(q). Default method: leapfrog.
    """

    name: str = "canonical"
    parts: tuple[str, ...] = ("q", "p")
    canonical: bool = True
    default_method: str = "leapfrog"

    def check_state(self, state) -> tuple:
        hint = "pass tpjax.integrate(H, (q, p), ...) or choose structure='so3' for a single vector L"
        return state_pair(state, ("q", "p"), self.name, hint)

    def emit_flow(self, b, tr, grads, regs):
        q, p = regs
        return [poisson_j(b, grads[1], q, "PASS", comment="qdot = +dH/dp"),
                poisson_j(b, grads[0], p, "NEGATE", comment="pdot = -dH/dq")]  # fmt: skip
