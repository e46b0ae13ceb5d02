"""Simulation UX costs on a long CPU ensemble: progress bar off vs on, SaveAt(fn) vs saving states then reducing.

4096 pendulums x 10^4 leapfrog steps in float32 (vmapped, jitted, compiled ahead so only runs are timed;
min and median of 7, interleaved). The observable is each member's kinetic energy every 10 steps.
Run: ``JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_ux.py [--n 4096] [--steps 10000]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import tpjax


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def kinetic(t, s):
    return 0.5 * s[1] ** 2


def timed(fns: dict, *args, repeats=7) -> dict:
    """{name: (min, median) wall seconds, output}: compiled ahead, warmed, then run interleaved (the
    machine is shared, so interleaving spreads its load over all variants alike)."""
    runs = {k: jax.jit(f).lower(*args).compile() for k, f in fns.items()}
    outs = {k: jax.block_until_ready(r(*args)) for k, r in runs.items()}
    ts = {k: [] for k in runs}
    for _ in range(repeats):
        for k, r in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(r(*args))
            ts[k].append(time.perf_counter() - t0)
    return {k: (min(v), statistics.median(v), outs[k]) for k, v in ts.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=10)
    a = ap.parse_args()
    n, steps, k, dt = a.n, a.steps, a.every, 0.01
    q0 = jnp.linspace(0.1, 3.0, n, dtype=jnp.float32)
    devnull = open(os.devnull, "w")  # noqa: SIM115 (the bar renders, to nowhere)

    def integ(progress):
        return jax.vmap(lambda q: tpjax.integrate(pendulum, (q, 0 * q), dt=dt, steps=steps, progress=progress))

    def states_then_reduce(q):
        sol = jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=dt, steps=steps, save_every=k))(q)
        return kinetic(None, sol.states)

    def with_fn(q):
        sa = tpjax.SaveAt(t0=True, steps=k, fn=kinetic)
        return jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=dt, steps=steps, saveat=sa))(q).observables

    res = timed({"off": integ(False), "on": integ({"file": devnull}), "states": states_then_reduce, "fn": with_fn}, q0)
    assert bool(jnp.all(res["off"][2][0] == res["on"][2][0]))  # the bar changes no number
    assert bool(jnp.all(res["states"][2] == res["fn"][2]))  # nor does streaming the observable
    mb = lambda x: f"{x / 2**20:.1f} MB"
    saves = steps // k + 1
    rows = [("integrate, progress off", "off", "-"), ("integrate, progress on (~40 updates)", "on", "-"),
            (f"trajectory: states every {k}, then reduce", "states", mb(3 * n * saves * 4)),  # q, p, H
            (f"trajectory: SaveAt(steps={k}, fn=kinetic)", "fn", mb(2 * n * saves * 4))]  # kinetic, H  # fmt: skip
    print(f"{datetime.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} cores  "
          f"jax {jax.__version__}  {n} pendulums x {steps} steps, float32, leapfrog")  # fmt: skip
    print("| run | min wall (s) | median wall (s) | M system-steps/s (min) | saved arrays (incl. energies) |")
    print("|---|---|---|---|---|")
    for name, key, mem in rows:
        lo, med, _ = res[key]
        print(f"| {name} | {lo:.3f} | {med:.3f} | {n * steps / lo / 1e6:.1f} | {mem} |")
    r = lambda a, b: 100 * (res[a][0] / res[b][0] - 1)
    print(f"progress bar cost (min): {r('on', 'off'):+.1f}%; "
          f"SaveAt(fn) vs states+reduce (min): {r('fn', 'states'):+.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
