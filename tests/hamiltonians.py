"""The test zoo: Hamiltonians with initial states (and exact solutions where they exist)."""

from __future__ import annotations

import jax.numpy as jnp


def harmonic(q, p):
    return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2)


def pendulum(q, p):
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))


def kepler(q, p):
    return 0.5 * jnp.sum(p**2) - 1.0 / jnp.sqrt(jnp.sum(q**2))


def henon_heiles(q, p):
    x, y = q[0], q[1]
    return 0.5 * jnp.sum(p**2) + 0.5 * (x**2 + y**2) + x**2 * y - y**3 / 3.0


def fpu(q, p, alpha=0.25):
    """Fermi-Pasta-Ulam-Tsingou alpha chain with fixed ends."""
    x = jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)])
    d = x[1:] - x[:-1]
    return 0.5 * jnp.sum(p**2) + jnp.sum(0.5 * d**2 + alpha / 3.0 * d**3)


def _state(q, p, dtype):
    return jnp.asarray(q, dtype), jnp.asarray(p, dtype)


#: name -> (H, (q0, p0) factory). States are float64 unless a dtype is given.
ZOO = {
    "harmonic": (harmonic, lambda dt=jnp.float64: _state([1.0, -0.5], [0.0, 0.3], dt)),
    "pendulum": (pendulum, lambda dt=jnp.float64: _state([1.0, 2.0], [0.0, 0.1], dt)),
    "kepler": (kepler, lambda dt=jnp.float64: _state([0.5, 0.0], [0.0, 1.63], dt)),  # e = 0.33
    "henon_heiles": (henon_heiles, lambda dt=jnp.float64: _state([0.1, -0.2], [0.3, 0.1], dt)),
    "fpu": (fpu, lambda dt=jnp.float64: _state(jnp.sin(jnp.arange(1, 9) * 0.4), jnp.zeros(8), dt)),
}
