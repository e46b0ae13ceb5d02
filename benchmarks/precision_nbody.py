"""Energy error of a 5-body gravitational system, 10^5 leapfrog steps, in float32 vs float64.

    JAX_PLATFORMS=cpu python benchmarks/precision_nbody.py

A sun (mass 1) and four planets (mass 1e-3) on near-circular orbits of radius 1, 1.6, 2.5 and 4 (G = 1;
the inner period is 2 pi, so the run is ~16 inner orbits); dt = 1e-3.
Prints the maximum relative energy error |H(t) - H(0)| / |H(0)| over the run, saved every 1000 steps.
"""

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402

N, STEPS, DT = 5, 100_000, 1e-3


M = np.array([1.0, 1e-3, 1e-3, 1e-3, 1e-3])
R = np.array([0.0, 1.0, 1.6, 2.5, 4.0])


def H(q, p):
    m = jnp.asarray(M, q.dtype)
    x, v = q.reshape(N, 2), p.reshape(N, 2)
    d = x[:, None, :] - x[None, :, :]
    r = jnp.sqrt(jnp.sum(d**2, axis=-1) + jnp.eye(N))
    return 0.5 * jnp.sum(jnp.sum(v**2, -1) / m) - 0.5 * jnp.sum((1.0 - jnp.eye(N)) * m[:, None] * m[None, :] / r)


def initial():
    th = np.array([0.0, 0.3, 2.0, 3.9, 5.1])
    x = R[:, None] * np.stack([np.cos(th), np.sin(th)], -1)
    speed = np.sqrt(1.0 / np.maximum(R, 1e-300)) * (R > 0)
    v = speed[:, None] * np.stack([-np.sin(th), np.cos(th)], -1)
    p = M[:, None] * v
    p[0] = -p[1:].sum(0)  # zero total momentum
    return x.reshape(-1), p.reshape(-1)


def main():
    q0, p0 = initial()
    for dtype in (jnp.float32, jnp.float64):
        sol = tpjax.trajectory(H, (jnp.asarray(q0, dtype), jnp.asarray(p0, dtype)), dt=DT, steps=STEPS,
                               save_every=1000)  # fmt: skip
        print(f"{jnp.dtype(dtype).name}: max relative energy error {float(sol.energy_error.max()):.2e}")


if __name__ == "__main__":
    main()
