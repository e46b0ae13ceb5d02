"""The Solution pytree returned by ``tpjax.trajectory``: saved states, energies, Casimirs."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Solution(NamedTuple):
    """Saved states of a trajectory (a pytree). ``ts[k]`` is the time of ``states`` entry k (the initial
    state first); ``energies`` is H at each saved state; ``casimirs`` the structure's Casimirs there
    (so3: |L|^2; se3: (Gamma.Gamma, L.Gamma); point vortices: (impulse_x, impulse_y, angular
    impulse); canonical: None). Time is the last axis of ``energies`` and of each Casimir.
    With ``trajectory(..., tangent=True)``: ``lyapunov`` (the running largest-Lyapunov-exponent estimate)
    and ``megno`` (the running MEGNO <Y>) at each saved time (0 at the initial time); else None."""

    ts: Any
    states: Any
    energies: Any
    casimirs: Any = None
    lyapunov: Any = None
    megno: Any = None

    @property
    def casimir_error(self):
        """Relative drift of each Casimir from its initial value (same layout as ``casimirs``)."""

        def rel(c):
            c0 = c[..., :1]
            return jnp.abs(c - c0) / jnp.maximum(jnp.abs(c0), jnp.finfo(c.dtype).tiny)

        return jax.tree.map(rel, self.casimirs)

    @property
    def energy_error(self):
        """Relative energy error |H(t) - H(0)| / |H(0)| at each saved time (time is the last axis of
        ``energies``, also for a vmapped Solution)."""
        e0 = self.energies[..., :1]
        return jnp.abs(self.energies - e0) / jnp.maximum(jnp.abs(e0), jnp.finfo(self.energies.dtype).tiny)
