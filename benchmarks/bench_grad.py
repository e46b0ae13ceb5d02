"""Gradient of a long `tpjax.integrate` run through each adjoint: peak memory and wall time.

An ensemble of N pendulums (H = p^2/2 - k cos q, float32, leapfrog), loss = sum(q_N^2), gradient with respect
to (z0, params, dt). For steps in STEPS and each adjoint it prints, as a markdown table: the peak memory of
the compiled `jax.jit(jax.grad(loss))` and `jax.jit(loss)` executables (temp + arguments + outputs, from
`memory_analysis()`), and the median wall time of each.

Run: `JAX_PLATFORMS=cpu .venv/bin/python benchmarks/bench_grad.py [--n 4096] [--repeats 5]`
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


def make_loss(steps, adjoint):
    """loss(z0, params, dt) = sum(q_N^2) after ``steps`` steps of tpjax.integrate (leapfrog, XLA path)."""

    def loss(z0, params, dt):
        H = lambda q, p: jnp.sum(0.5 * p**2 - params["k"] * jnp.cos(q))
        q, _ = tpjax.integrate(H, z0, dt=dt, steps=steps, adjoint=adjoint, backend="xla")
        return jnp.sum(q**2)

    return loss


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
    args = parser.parse_args()

    n = args.n
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

    print(f"date: {datetime.date.today().isoformat()}  ")
    print(f"device: {jax.devices()}  ")
    print(f"jax {jax.__version__}, {n} pendulums, float32, leapfrog, loss = sum(q_N^2), d/d(z0, k, dt)  ")
    print(f"command: `{' '.join(['python', *sys.argv])}`\n")
    print("| adjoint | steps | grad peak (MiB) | fwd peak (MiB) | grad (ms) | fwd (ms) | grad / fwd |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for adjoint, steps, m_grad, m_fwd, t_grad, t_fwd in rows:
        print(
            f"| {adjoint} | {steps:,} | {m_grad / 2**20:.2f} | {m_fwd / 2**20:.2f} | {t_grad * 1e3:.2f} "
            f"| {t_fwd * 1e3:.2f} | {t_grad / t_fwd:.1f} |"
        )


if __name__ == "__main__":
    main()
