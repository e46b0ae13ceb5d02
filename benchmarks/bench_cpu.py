"""tpjax.integrate against a hand-written lax.scan leapfrog with jax.grad, side by side in one run.

Goal (issue 2): ratio tpjax / hand-written <= 1.05 -- the TP-IR layer must cost nothing after XLA fusion.
Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_cpu.py``
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import tpjax


def pendulum(q, p):
    return jnp.sum(0.5 * p**2 - jnp.cos(q))


def harmonic(q, p):
    return jnp.sum(0.5 * p**2 + 0.5 * q**2)


def handwritten(H, steps):
    """What a user writes: kick-drift-kick leapfrog with jax.grad, the force reused between steps."""
    dHdq, dHdp = jax.grad(H, 0), jax.grad(H, 1)

    def run(q, p, dt):
        def step(c, _):
            q, p, f = c
            p = p - 0.5 * dt * f
            q = q + dt * dHdp(q, p)
            f = dHdq(q, p)
            p = p - 0.5 * dt * f
            return (q, p, f), None

        return jax.lax.scan(step, (q, p, dHdq(q, p)), length=steps)[0][:2]

    return jax.jit(run)


def tp(H, steps):
    return jax.jit(lambda q, p, dt: tpjax.integrate(H, (q, p), dt=dt, steps=steps))


def _time(f, *args, reps=7):
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(n=4096, steps=1000, dtype=jnp.float32):
    q = jnp.linspace(0.1, 2.0, n, dtype=dtype)
    p = jnp.zeros(n, dtype)
    dt = jnp.asarray(0.01, dtype)
    rows = []
    for name, H in (("pendulum", pendulum), ("harmonic", harmonic)):
        a, b = handwritten(H, steps), tp(H, steps)
        ra, rb = a(q, p, dt), b(q, p, dt)
        diff = float(jnp.max(jnp.abs(ra[0] - rb[0])))
        # interleave the two, three rounds, keep each one's best median
        ta = min(_time(a, q, p, dt) for _ in range(3))
        tb = min(_time(b, q, p, dt) for _ in range(3))
        rows.append((name, ta * 1e3, tb * 1e3, tb / ta, diff))
    print(f"date {datetime.date.today()}  device {jax.devices()[0].device_kind} ({platform.processor() or 'cpu'})"
          f"  jax {jax.__version__}  n={n} steps={steps} dtype={jnp.dtype(dtype).name}")  # fmt: skip
    print("| H | hand-written lax.scan + jax.grad (ms) | tpjax.integrate (ms) | ratio | max |dq| |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.3f} | {r[4]:.1e} |")


if __name__ == "__main__":
    main()
