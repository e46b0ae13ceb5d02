"""Bounded-argument sin/cos in the fused kernel: the float32 pendulum, side by side in one run (GPU).

4,194,304 pendulums x 1000 leapfrog steps, dt = 0.01, H = p^2/2 - cos q, float32; median of REPS runs, ms:
  scan u1 / u10       a hand-written ``lax.scan`` leapfrog, force by ``jax.grad`` of the potential (unroll 1, 10)
  libdevice           the generated kernel with libdevice ``tl.sin`` alone (``bounded_trig=False``)
  tpjax               ``tpjax.integrate`` under vmap, default arguments: ``kernels.trig.sin_bounded`` with
                      the per-block libdevice redo
  tpjax, 1 far        the same with one member at q = 3e9 (one block of 256 redone)
  tpjax, all far      every member beyond TRIG_BOUND (every block redone: the worst case)
  fast_math           ``fast_math=True`` (``sin.approx.f32``; not precise)
and the largest difference of tpjax's final state from the libdevice kernel's (in-range run).

Run:  PYTHONPATH=. python benchmarks/bench_trig.py   (writes $OUT/bench_trig.md when OUT is set)
"""

from __future__ import annotations

import datetime
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tpjax  # noqa: E402
from benchmarks._timing import median_ms, report  # noqa: E402
from tpjax import _compat  # noqa: E402
from tpjax.codegen import triton as TG  # noqa: E402
from tpjax.codegen.triton_source import generate_program  # noqa: E402

N, STEPS, DT, REPS = 4_194_304, 1000, 0.01, 7
H = lambda q, p: 0.5 * p**2 - jnp.cos(q)


def timeit(fn, *args):
    return median_ms(fn, *args, reps=REPS)


def user_scan(unroll):
    force = jax.vmap(jax.grad(lambda q: -jnp.cos(q)))

    def run(q, p):
        def step(s, _):
            q, p = s
            p = p - 0.5 * DT * force(q)
            q = q + DT * p
            return (q, p - 0.5 * DT * force(q)), None

        return jax.lax.scan(step, (q, p), None, length=STEPS, unroll=unroll)[0]

    return jax.jit(run)


def libdevice_kernel():
    comp = tpjax.compile(H, (jnp.float32(0.0), jnp.float32(0.0)), method="leapfrog")
    kern = TG.load_kernel(generate_program(comp.step, comp.prologue, bounded_trig=False))
    grid = ((N + TG.BLOCK - 1) // TG.BLOCK,)

    def run(q, p):
        return _compat.triton_call(q, p, jnp.asarray(DT, jnp.float32), N, STEPS, kernel=kern, out_shape=(q, p),
                                   grid=grid, num_warps=TG.NUM_WARPS, BLOCK=TG.BLOCK, FAST_MATH=False)  # fmt: skip

    return jax.jit(run)


def tpjax_run(**kw):
    return jax.jit(jax.vmap(lambda q, p: tuple(tpjax.integrate(H, (q, p), dt=DT, steps=STEPS, **kw))))


def main():
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.uniform(-3, 3, N), jnp.float32)
    p = jnp.asarray(rng.uniform(-1, 1, N), jnp.float32)
    one_far = q.at[N // 2].set(3.0e9)
    all_far = q + 3.0e5
    rows = [
        ("scan u1", timeit(user_scan(1), q, p)),
        ("scan u10", timeit(user_scan(10), q, p)),
        ("libdevice kernel", timeit(libdevice_kernel(), q, p)),
        ("tpjax (default)", timeit(tpjax_run(), q, p)),
        ("tpjax, 1 member far", timeit(tpjax_run(), one_far, p)),
        ("tpjax, all members far", timeit(tpjax_run(), all_far, p)),
        ("tpjax fast_math", timeit(tpjax_run(fast_math=True), q, p)),
    ]
    got, ref = tpjax_run()(q, p), libdevice_kernel()(q, p)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got, ref, strict=True))
    u1 = rows[0][1]
    lines = [
        f"# bench_trig — {datetime.date.today()}, {jax.devices()[0].device_kind}, jax {jax.__version__}",
        f"pendulum {N} x {STEPS} steps float32; command: PYTHONPATH=. python benchmarks/bench_trig.py",
        "",
        "| variant | ms | vs scan u1 |",
        "|---|---:|---:|",
        *(f"| {name} | {ms:.2f} | {u1 / ms:.2f}x |" for name, ms in rows),
        "",
        f"max |tpjax - libdevice kernel| over the final state: {diff:.3g}",
    ]
    text = "\n".join(lines)
    report("bench_trig.md", text)


if __name__ == "__main__":
    main()
