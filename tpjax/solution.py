"""The Solution pytree returned by ``tpjax.trajectory``: saved states, energies, Casimirs."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Solution(NamedTuple):
    """Saved states of a trajectory (a pytree). ``ts[k]`` is the time of ``states`` entry k (the initial
    state first); ``energies`` is H at each saved state; ``casimirs`` the structure's Casimirs there
    (so3: |L|^2; se3: (Gamma.Gamma, L.Gamma); canonical: None)."""

    ts: Any
    states: Any
    energies: Any
    casimirs: Any = None

    @property
    def casimir_error(self):
        """Relative drift of each Casimir from its initial value (same layout as ``casimirs``)."""
        return jax.tree.map(lambda c: jnp.abs(c - c[..., :1]) / jnp.abs(c[..., :1]), self.casimirs)

    @property
    def energy_error(self):
        """Relative energy error |H(t) - H(0)| / |H(0)| at each saved time (time is the last axis of
        ``energies``, also for a vmapped Solution)."""
        e0 = self.energies[..., :1]
        return jnp.abs(self.energies - e0) / jnp.maximum(jnp.abs(e0), jnp.finfo(self.energies.dtype).tiny)


def casimirs(structure: str, saved):
    if structure == "so3":
        return jnp.sum(saved[0] ** 2, axis=-1)
    if structure == "se3":
        L, G = saved
        return (jnp.sum(G * G, axis=-1), jnp.sum(L * G, axis=-1))
    return None
