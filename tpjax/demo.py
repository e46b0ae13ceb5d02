"""The demo (``make demo``): the TP-IR of the harmonic oscillator, then 4096 pendulums for 10,000 steps."""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import tpjax
from tpjax.ir import to_text


def harmonic(q, p):
    return 0.5 * p**2 + 0.5 * q**2


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def main(n: int = 4096, steps: int = 10_000, dt: float = 0.01, out: str = "tpjax_demo.png") -> None:
    print("== TP-IR of H = p^2/2 + q^2/2, symplectic Euler, before passes (the seed's four phases) ==")
    print(to_text(tpjax.compile(harmonic, (1.0, 0.0), method="symplectic_euler").source))
    print("\n== leapfrog after the optimisation passes (one gradient evaluation per step) ==")
    print(tpjax.compile(harmonic, (1.0, 0.0), method="leapfrog"))

    q0 = jnp.linspace(0.1, 3.0, n, dtype=jnp.float32)  # amplitudes up to near the separatrix
    p0 = jnp.zeros_like(q0)
    run = jax.jit(jax.vmap(lambda q, p: tpjax.trajectory(pendulum, (q, p), dt=dt, steps=steps, save_every=10)))
    sol = jax.block_until_ready(run(q0, p0))  # compile + first run
    t0 = time.perf_counter()
    sol = jax.block_until_ready(run(q0, p0))
    wall = time.perf_counter() - t0
    err = np.asarray(sol.energy_error)
    print(f"\n== {n} pendulums x {steps} steps, leapfrog, float32, dt={dt} on {jax.devices()[0].platform} ==")
    print(f"wall time {wall * 1e3:.1f} ms ({n * steps / wall / 1e6:.1f} M system-steps/s)")
    print(f"relative energy error: max {err.max():.2e}, median over systems of the max {np.median(err.max(1)):.2e}")
    print(f"max error in the first tenth {err[:, : err.shape[1] // 10].max():.2e}, "
          f"in the last tenth {err[:, -err.shape[1] // 10 :].max():.2e}")  # fmt: skip
    _plot(sol, err, out)
    print(f"wrote {os.path.abspath(out)}")


def _plot(sol, err, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, p = (np.asarray(x) for x in sol.states)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    for i in np.linspace(0, q.shape[0] - 1, 24).astype(int):
        a.plot(q[i], p[i], lw=0.7)
    a.set(xlabel="q", ylabel="p", title="pendulum phase portrait (24 of the ensemble)")
    t = np.asarray(sol.ts[0])
    for i in np.linspace(0, q.shape[0] - 1, 6).astype(int):
        b.semilogy(t[1:], np.maximum(err[i, 1:], 1e-9), lw=0.7, label=f"q0={q[i, 0]:.2f}")
    b.set(xlabel="t", ylabel="|H(t) - H(0)| / |H(0)|", title="relative energy error (leapfrog, float32)")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
