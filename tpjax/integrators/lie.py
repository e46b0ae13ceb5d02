"""The free rigid body's explicit Lie-Poisson splitting as an integrator object.

The compiled program is the so(3)* flow (for the listing and to read the inertia off H); the step is the
exact axis rotations of ``rigid_body.py`` (or their compensated form under ``Precision(compensated=True)``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ..codegen import reference
from .base import AbstractIntegrator
from .flow import schedule_flow
from .stepper import Stepper, program_inputs


@dataclasses.dataclass(frozen=True)
class RigidBodySplitting(AbstractIntegrator):
    """Free rigid body H = sum L_i^2 / (2 I_i): exact axis rotations, Strang-composed (order 2) or
    Yoshida-composed (order 4). Explicit, symmetric, Poisson; |L|^2 preserved to roundoff.
    H's form is proven from its jaxpr, so it holds for traced parameters; I is then read off H.
    Reference: McLachlan, Phys. Rev. Lett. 71
    (1993) 3043; Hairer, Lubich, Wanner, sec. VII.5."""

    name: str = "rigid_body"
    order: int = 2
    symmetric: bool = True
    structures: tuple[str, ...] = ("so3",)

    def schedule(self, b, tr, regs, const_regs):
        schedule_flow(b, tr, regs, const_regs)

    def check(self, comp) -> None:
        """H must be sum_i L_i^2 / (2 I_i) + const, proven from its jaxpr (traced parameters included);
        concrete moments must be positive (traced ones become NaN when they are not)."""
        from .rigid_body import check_rigid_body_form

        check_rigid_body_form(comp.traced.jaxpr, comp.traced.consts)
        self.inertia(comp)
        pol = comp.precision
        if pol is not None and pol.grad != pol.step:
            raise ValueError(
                f"method={self.name!r} runs exact axis rotations and evaluates no gradient, so "
                f"Precision(grad={pol.grad!r}) would have no effect; use Precision(grad={pol.step!r}, ...) "
                "(compensated=True is supported) or method='implicit_midpoint' for mixed-precision gradients"
            )

    def inertia(self, comp, params=None):
        """The principal moments I = 1 / diag(d^2H/dL^2), read off the compiled energy program once ``check``
        has proven H's form from its jaxpr."""
        from .rigid_body import inertia_from_energy

        consts = comp.consts if params is None else params[: len(comp.consts)]
        n = len(comp.traced.consts)
        energy = lambda L: reference.run(comp.energy, program_inputs(comp, (L,), consts[:n]))["ptr_E"]
        concrete = not any(isinstance(c, jax.core.Tracer) for c in consts)
        return inertia_from_energy(energy, comp.traced.avals[0].dtype, concrete)

    def stepper(self, comp) -> Stepper:
        from . import rigid_body as rb
        from . import rigid_body_compensated as rbc

        params = tuple(comp.consts) + (self.inertia(comp),)
        if comp.precision is not None and comp.precision.compensated:  # z = (L, e): TwoSum-compensated
            f = rbc.rigid_body_order4_compensated if self.order == 4 else rbc.rigid_body_strang_compensated
            return Stepper(lambda params, z, dt: f(z[0], z[1], dt, params[-1]), params,
                           lambda params, parts: (parts[0], jnp.zeros_like(parts[0])), 1)  # fmt: skip
        f = rb.rigid_body_order4 if self.order == 4 else rb.rigid_body_strang
        return Stepper(lambda params, z, dt: (f(z[0], dt, params[-1]),), params,
                       lambda params, parts: tuple(parts), 1)  # fmt: skip


RIGID_BODY = RigidBodySplitting()
RIGID_BODY4 = RigidBodySplitting(name="rigid_body4", order=4)
