"""The test zoo: Hamiltonians with initial states (and exact solutions where they exist)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


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


# ---- workloads beyond small vectors: matrices of particles, masks, index arrays, dense layers ----------
def lennard_jones(q, p, rc=1.6):
    """n atoms in 2D (q: (n, 2)) through a distance matrix, the 12-6 potential cut off at rc (a mask)."""
    n = q.shape[0]
    d = q[:, None, :] - q[None, :, :]
    r2 = jnp.sum(d**2, axis=-1) + jnp.eye(n, dtype=q.dtype)
    inv6 = 1.0 / r2**3
    mask = (r2 < rc**2) & ~jnp.eye(n, dtype=bool)
    return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(jnp.where(mask, 4.0 * (inv6**2 - inv6), 0.0))


def gravity(q, p):
    """n unit masses in 3D (q: (n, 3)), pairs through numpy index arrays (a gather and a scatter-add)."""
    i, j = np.triu_indices(q.shape[0], 1)
    return 0.5 * jnp.sum(p**2) - jnp.sum(1.0 / jnp.sqrt(jnp.sum((q[i] - q[j]) ** 2, axis=-1) + 1e-3))


def mlp_potential(width=8, d=3):
    """A separable H whose potential is a small tanh network (weights: array parameters of H)."""
    rng = np.random.default_rng(3)
    W, w = rng.standard_normal((d, width)) / np.sqrt(d), rng.standard_normal(width) / np.sqrt(width)

    def H(q, p):
        return 0.5 * jnp.sum(p**2) + jnp.dot(jnp.tanh(q @ W.astype(q.dtype)), w.astype(q.dtype)) + 0.5 * jnp.sum(q**2)

    return H


def relu_well(q, p):
    """A piecewise potential through jnp.maximum (its gradient selects on a comparison)."""
    return 0.5 * jnp.sum(p**2) + jnp.sum(jnp.maximum(q, 0.0) ** 2 + 0.1 * q**2)


#: kernels for the shapes and ops the fused kernel unrolls beyond scalar and small-vector states.
KERNEL_ZOO = {
    "lennard_jones": (
        lennard_jones,
        lambda dt=jnp.float64: _state(
            [[0, 0], [1.1, 0], [0, 1.1], [1.1, 1.2]], [[0.1, 0], [0, 0.1], [0, 0], [-0.1, -0.1]], dt
        ),
    ),
    "gravity": (gravity, lambda dt=jnp.float64: _state(np.eye(4, 3) * 2.0, np.roll(np.eye(4, 3), 1, axis=1) * 0.3, dt)),
    "mlp": (mlp_potential(), lambda dt=jnp.float64: _state([0.3, -0.2, 0.5], [0.1, 0.0, -0.1], dt)),
    "relu": (relu_well, lambda dt=jnp.float64: _state([0.5, -0.4, 0.05], [0.0, 0.2, -0.3], dt)),
    "fpu_d24": (fpu, lambda dt=jnp.float64: _state(jnp.sin(jnp.arange(1, 25) * 0.2), jnp.zeros(24), dt)),
}


def _lattice(n, spacing=1.12):
    side = int(np.ceil(np.sqrt(n)))
    return np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)[:n] * spacing


def lennard_jones_smooth(q, p, rc=1.6):
    """``lennard_jones`` with the switch (1 - r^2/rc^2)^2, so energy and force vanish continuously at rc: a
    member that grazes the cutoff keeps kernel and XLA within roundoff (with the hard cutoff a graze within the
    last bits of r^2 sends the two down different branches, a force jump of order V'(rc))."""
    n = q.shape[0]
    d = q[:, None, :] - q[None, :, :]
    r2 = jnp.sum(d**2, axis=-1) + jnp.eye(n, dtype=q.dtype)
    inv6 = 1.0 / r2**3
    mask = (r2 < rc**2) & ~jnp.eye(n, dtype=bool)
    v = 4.0 * (inv6**2 - inv6) * (1.0 - r2 / rc**2) ** 2
    return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(jnp.where(mask, v, 0.0))


def pendulum_sum_chain(q, p):
    """A chain of coupled pendula: a trigonometric potential with a sum to a scalar and neighbour shifts."""
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q)) + 0.3 * jnp.sum(q) ** 2 / q.size + 0.5 * jnp.sum(jnp.diff(q) ** 2)


#: kernels too long to unroll, written in the tile form (``codegen.triton_tile``): an FPU chain of d = 128
#: (padding and slices along the chain), 32 Lennard-Jones atoms with a smooth cutoff (a 32 x 32 distance
#: matrix, masks, the eye's constant table), and a pendulum chain of d = 100 (sin/cos, a sum to a scalar; not
#: a power of two).
TILE_ZOO = {
    "fpu_d128": (fpu, lambda dt=jnp.float64: _state(jnp.sin(jnp.arange(1, 129) * 0.03), jnp.zeros(128), dt)),
    "lennard_jones_32": (
        lennard_jones_smooth,
        lambda dt=jnp.float64: _state(_lattice(32), 0.1 * np.cos(np.arange(64.0)).reshape(32, 2), dt),
    ),
    "pendulum_chain_100": (
        pendulum_sum_chain,
        lambda dt=jnp.float64: _state(np.sin(np.arange(100) * 0.1), np.zeros(100), dt),
    ),
}
