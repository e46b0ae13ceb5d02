"""Gradient of a long `tpjax.integrate` run through each adjoint: peak memory and wall time.

An ensemble of N pendulums (H = p^2/2 - k cos q, float32, leapfrog), loss = sum(q_N^2), gradient with respect
to (z0, params, dt). For steps in STEPS and each adjoint it prints, as a markdown table: the peak memory of
the compiled `jax.jit(jax.grad(loss))` and `jax.jit(loss)` executables (temp + arguments + outputs, from
`memory_analysis()`), and the median wall time of each.

A second table (`--memory`, or `--memory-only` for just it) gives the temp bytes of the compiled gradient
for steps in MEMORY_STEPS and each adjoint, for the pendulum ensemble and for N Kepler orbits (both
well-conditioned): "guarded" (the default) and "reversible" stay flat in steps, "checkpointed" grows like
sqrt(steps), "direct" like steps. Only compiled, never run, so it is fast even for 10^5 steps.

Run: `JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_grad.py [--n 4096] [--repeats 5] [--memory]`
"""

import argparse
import datetime
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import tpjax
from tpjax.adjoint import ADJOINTS

STEPS = (100, 1_000, 10_000)
MEMORY_STEPS = (1_000, 10_000, 100_000)


def make_loss(steps, adjoint, system="pendulum"):
    """loss(z0, params, dt) = sum(q_N^2) after ``steps`` steps of tpjax.integrate (leapfrog, XLA path)."""

    def loss(z0, params, dt):
        if system == "pendulum":
            H = lambda q, p: jnp.sum(0.5 * p**2 - params["k"] * jnp.cos(q))
        else:  # N planar Kepler orbits, q and p of shape (N, 2)
            H = lambda q, p: jnp.sum(0.5 * p**2) - params["k"] * jnp.sum(1.0 / jnp.sqrt(jnp.sum(q**2, -1)))
        q, _ = tpjax.integrate(H, z0, dt=dt, steps=steps, adjoint=adjoint, backend="xla")
        return jnp.sum(q**2)

    return loss


def memory_table(n):
    """Markdown rows: temp bytes of jax.jit(jax.grad(loss)) per system, adjoint and steps (compile only)."""
    f32 = jnp.float32
    systems = {
        "pendulum": (jnp.linspace(-2.0, 2.0, n, dtype=f32), jnp.zeros(n, f32)),
        "kepler": (jnp.stack([jnp.ones(n, f32), jnp.zeros(n, f32)], -1),
                   jnp.stack([jnp.zeros(n, f32), jnp.linspace(0.8, 1.2, n, dtype=f32)], -1)),
    }  # fmt: skip
    lines = ["| system | adjoint | " + " | ".join(f"temp MiB, {s:.0e} steps" for s in MEMORY_STEPS) + " |"]
    lines.append("|---|---|" + "---:|" * len(MEMORY_STEPS))
    for system, z0 in systems.items():
        inputs = (z0, {"k": jnp.asarray(1.0, f32)}, jnp.asarray(0.01, f32))
        for adjoint in ADJOINTS:
            row = []
            for steps in MEMORY_STEPS:
                grad = jax.jit(jax.grad(make_loss(steps, adjoint, system), argnums=(0, 1, 2)))
                row.append(grad.lower(*inputs).compile().memory_analysis().temp_size_in_bytes / 2**20)
                print(f"# memory {system} {adjoint} {steps}", file=sys.stderr, flush=True)
            lines.append(f"| {system} | {adjoint} | " + " | ".join(f"{m:.3f}" for m in row) + " |")
    return lines


def peak_bytes(compiled):
    m = compiled.memory_analysis()
    return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


def median_seconds(fn, args, repeats):
    jax.block_until_ready(fn(*args))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="number of pendulums")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="also print the memory-vs-steps table")
    parser.add_argument("--memory-only", action="store_true", help="print only the memory-vs-steps table")
    args = parser.parse_args()

    n = args.n
    header = [f"date: {datetime.date.today().isoformat()}  ", f"device: {jax.devices()}  "]
    if args.memory_only:
        print("\n".join(header))
        print(f"jax {jax.__version__}, {n} systems, float32, leapfrog, loss = sum(q_N^2), d/d(z0, k, dt)  ")
        print(f"command: `{' '.join(['python', *sys.argv])}`\n")
        print("\n".join(memory_table(n)))
        return
    z0 = (jnp.linspace(-2.0, 2.0, n, dtype=jnp.float32), jnp.zeros(n, jnp.float32))
    inputs = (z0, {"k": jnp.asarray(1.0, jnp.float32)}, jnp.asarray(0.01, jnp.float32))
    rows = []
    for steps in STEPS:
        for adjoint in ADJOINTS:
            loss = make_loss(steps, adjoint)
            fwd = jax.jit(loss).lower(*inputs).compile()
            grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(*inputs).compile()
            repeats = args.repeats if steps < 10_000 else max(1, args.repeats // 2)
            t_fwd, t_grad = median_seconds(fwd, inputs, repeats), median_seconds(grad, inputs, repeats)
            rows.append((adjoint, steps, peak_bytes(grad), peak_bytes(fwd), t_grad, t_fwd))
            print(f"# done {adjoint} {steps}", file=sys.stderr, flush=True)

    print("\n".join(header))
    print(f"jax {jax.__version__}, {n} pendulums, float32, leapfrog, loss = sum(q_N^2), d/d(z0, k, dt)  ")
    print(f"command: `{' '.join(['python', *sys.argv])}`\n")
    print("| adjoint | steps | grad peak (MiB) | fwd peak (MiB) | grad (ms) | fwd (ms) | grad / fwd |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for adjoint, steps, m_grad, m_fwd, t_grad, t_fwd in rows:
        print(
            f"| {adjoint} | {steps:,} | {m_grad / 2**20:.2f} | {m_fwd / 2**20:.2f} | {t_grad * 1e3:.2f} "
            f"| {t_fwd * 1e3:.2f} | {t_grad / t_fwd:.1f} |"
        )
    if args.memory:
        print("\n" + "\n".join(memory_table(n)))


if __name__ == "__main__":
    main()
