"""The demo (``make demo``): the TP-IR of the harmonic oscillator, then 4096 pendulums for 10,000 steps
with a progress bar, run statistics and a PNG drawn with ``Solution.plot_phase`` / ``plot_energy``."""

from __future__ import annotations

import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

import tpjax
from tpjax.ir import to_text


def _cpu_unless_gpu() -> None:
    """Without an NVIDIA device, pick the CPU quietly: otherwise the installed CUDA plugin prints a
    20-line cuDNN traceback before falling back. An explicit JAX_PLATFORMS always wins."""
    if "JAX_PLATFORMS" not in os.environ and not (os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")):
        jax.config.update("jax_platforms", "cpu")


def harmonic(q, p):
    return 0.5 * p**2 + 0.5 * q**2


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def main(n: int = 4096, steps: int = 10_000, dt: float = 0.01, out: str = "tpjax_demo.png") -> None:
    _cpu_unless_gpu()
    print("== TP-IR of H = p^2/2 + q^2/2, symplectic Euler, before passes (the seed's four phases) ==")
    print(to_text(tpjax.compile(harmonic, (1.0, 0.0), method="symplectic_euler").source))
    print("\n== leapfrog after the optimisation passes (one gradient evaluation per step) ==")
    print(tpjax.compile(harmonic, (1.0, 0.0), method="leapfrog"))

    q0 = jnp.linspace(0.1, 3.0, n, dtype=jnp.float32)  # amplitudes up to near the separatrix
    p0 = jnp.zeros_like(q0)
    one = lambda q, p: tpjax.trajectory(pendulum, (q, p), dt=dt, steps=steps, save_every=10,
                                        progress={"desc": f"{n} pendulums"})  # fmt: skip
    run = jax.jit(jax.vmap(one)).lower(q0, p0).compile()  # compile first, so the bar times the run alone
    print(f"\n== {n} pendulums x {steps} steps, leapfrog, float32, dt={dt} on {jax.devices()[0].platform} ==",
          flush=True)  # fmt: skip
    t0 = time.perf_counter()
    sol = jax.block_until_ready(run(q0, p0))
    wall = time.perf_counter() - t0
    stats = sol.stats
    err = np.asarray(sol.energy_error)
    print(f"wall time {wall * 1e3:.1f} ms ({n * steps / wall / 1e6:.1f} M system-steps/s), backend {stats.backend}")
    print(f"relative energy error: max {err.max():.2e}, median over systems of the max "
          f"{np.median(np.asarray(stats.max_energy_error)):.2e}")  # fmt: skip
    print(f"max error in the first tenth {err[:, : err.shape[1] // 10].max():.2e}, "
          f"in the last tenth {err[:, -err.shape[1] // 10 :].max():.2e}; "
          f"largest |drift rate| {np.abs(np.asarray(stats.drift_rate)).max():.1e} per unit time")  # fmt: skip
    _plot(sol, out)
    print(f"wrote {os.path.abspath(out)}")


def _plot(sol, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    sol.plot_phase(ax=a, members=24)
    a.set_title("pendulum phase portrait (24 of the ensemble)")
    sol.plot_energy(ax=b, members=6)
    b.set_title("relative energy error (leapfrog, float32, 6 members)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
