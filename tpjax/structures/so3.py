"""so(3)*: the free rigid body's Lie-Poisson structure, J(L) = [L]x."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractStructure, poisson_j, state_array


@dataclasses.dataclass(frozen=True)
class SO3(AbstractStructure):
    """Lie-Poisson structure on so(3)*: L' = L x dH/dL (POISSON_J type LIE; the ``lie_cross`` pass makes it
    LIE_CROSS). State: ``L`` of shape (3,) (vmap for ensembles). Casimir: |L|^2.
    Default method: ``rigid_body`` (exact axis rotations: explicit, Poisson, |L|^2 to roundoff) when H's
    jaxpr proves H = sum_i L_i^2 / (2 I_i) + const with positive moments, otherwise ``implicit_midpoint``.
    Reference: Marsden & Ratiu, Introduction to Mechanics and Symmetry (1999), sec. 15.3."""

    name: str = "so3"
    parts: tuple[str, ...] = ("L",)

    def default_method_for(self, H, parts, precision=None) -> str:
        from .forms import polynomial_support

        if precision is not None and precision.grad != precision.step:  # the rotations evaluate no gradient
            return self.default_method
        L = parts[0]
        closed = jax.make_jaxpr(lambda L: H(L))(jax.ShapeDtypeStruct(L.shape, L.dtype))
        consts = [None if isinstance(c, jax.core.Tracer) else np.asarray(c) for c in closed.consts]
        monos = polynomial_support(closed.jaxpr, consts, (3,)) if closed.out_avals[0].shape == () else None
        if monos is None or any(sum(m) == 1 or (sum(m) == 2 and max(m) == 1) for m in monos):
            return self.default_method
        if any(c is None for c in consts):  # traced moments: positivity is checked at run time (NaN)
            return "rigid_body"
        from .._compat import eval_context

        with eval_context():
            h = jnp.diagonal(jax.jit(jax.hessian(H))(jnp.zeros(3, L.dtype)))  # one compile, not per-op dispatch
            if not isinstance(h, jax.core.Tracer) and not bool(jnp.all(h > 0)):
                return self.default_method
        return "rigid_body"

    def check_state(self, state) -> tuple:
        L = state_array(state, "L")
        if L.shape != (3,):
            raise ValueError(f"state L must have shape (3,) for structure='so3', got {L.shape}; vmap for ensembles")
        return (L,)

    def emit_flow(self, b, tr, grads, regs):
        return [poisson_j(b, grads[0], regs[0], "LIE", regs[0])]

    def casimirs(self, parts):
        return jnp.sum(parts[0] ** 2, axis=-1)
