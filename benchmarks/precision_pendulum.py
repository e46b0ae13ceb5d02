"""Mixed precision on a long float32 run (issue 3): energy error of 10^6 leapfrog steps of the pendulum.

The energy of every saved state is evaluated in float64 from the stored (float32) state, so the numbers
show what the integration did, not the rounding of the energy formula. dt = 1e-3 keeps the method's own
energy error (~dt^2) small enough that round-off is visible.
Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/precision_pendulum.py``
"""

from __future__ import annotations

import datetime
import time

import jax
import jax.numpy as jnp
import numpy as np

import tpjax

jax.config.update("jax_enable_x64", True)


def H(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def energy64(q, p):
    q, p = np.asarray(q, np.float64), np.asarray(p, np.float64)
    return 0.5 * p**2 + (1.0 - np.cos(q))


def run(dtype, precision, steps, dt, k):
    s = (jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype))
    f = jax.jit(lambda s: tpjax.trajectory(H, s, dt=dt, steps=steps, save_every=k, precision=precision))
    jax.block_until_ready(f(s))
    t0 = time.perf_counter()
    sol = jax.block_until_ready(f(s))
    wall = time.perf_counter() - t0
    e = energy64(*sol.states)
    rel = np.abs(e - e[0]) / e[0]
    return rel, wall


def main(steps=1_000_000, dt=1e-3, k=1000):
    P = tpjax.Precision
    cases = [
        ("float64 (reference)", jnp.float64, None),
        ("float32, plain", jnp.float32, None),
        ("float32 state, float64 gradients (Precision(grad='float64'))", jnp.float32, P(grad="float64")),
        ("float32 + Kahan-compensated steps", jnp.float32, P(compensated=True)),
        ("float32 state, float64 gradients + Kahan", jnp.float32, P(grad="float64", compensated=True)),
    ]
    print(f"date {datetime.date.today()}  jax {jax.__version__}  device {jax.devices()[0].device_kind}  "
          f"pendulum q0=1, {steps} leapfrog steps, dt={dt}")  # fmt: skip
    print("| variant | max rel. energy error | final rel. energy error | wall (s) |")
    print("|---|---:|---:|---:|")
    for name, dtype, pol in cases:
        rel, wall = run(dtype, pol, steps, dt, k)
        print(f"| {name} | {rel.max():.2e} | {rel[-1]:.2e} | {wall:.2f} |")


if __name__ == "__main__":
    main()
