"""Where the default gradient's time goes on the GPU (issue 10 item 3): its parts, timed interleaved.

For each case of ``bench_zoo.CASES`` named in ``CASES``: the fused forward (``jax.vmap`` of
``tpjax.integrate``); the forward half of ``jax.vjp`` alone (the anchored forward run: its primal and the
residuals it keeps, under one ``jax.jit``); the default gradient; and, traced with the one-loop anchored
forward switched off (``adjoint.loops.fused_saving`` returning None: one fused loop per segment inside an
XLA loop, the path before it), the same two again; and the gradient with one segment (``reanchor=steps``).
The variants are timed round-robin in one process (``ROUNDS`` rounds, one call of each per round; medians),
so a drift of the device's clocks during the run moves them together. ms, and each as a multiple of the fused
forward.

Run (GPU): ``CASES=pendulum_vmap,kepler,fpu_d8,mlp_64 python3 benchmarks/bench_grad_parts.py``
"""

import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.getcwd())

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks._timing import report  # noqa: E402
from benchmarks.bench_zoo import CASES, vmapped_final_q  # noqa: E402
from tpjax.adjoint import loops  # noqa: E402

DEFAULT = "pendulum_vmap,kepler,fpu_d8,mlp_64"
ROUNDS = int(os.environ.get("ROUNDS", "9"))
COLUMNS = ["fused forward", "vjp half", "default grad", "vjp half, per segment", "grad, per segment",
           "grad, one segment"]  # fmt: skip
BEFORE = ("vjp half, per segment", "grad, per segment")


@contextlib.contextmanager
def per_segment():
    """Trace with the one-loop anchored forward off (the segment loop that came before it)."""
    saved = loops.fused_saving
    loops.fused_saving = lambda *a, **k: None
    try:
        yield
    finally:
        loops.fused_saving = saved


def variants(case):
    run, (q, p) = vmapped_final_q(case)
    loss = lambda **kw: lambda q, p: jnp.sum(run(**kw)(q, p) ** 2)
    fns = {
        "fused forward": jax.jit(run()),
        "vjp half": jax.jit(lambda q, p: jax.vjp(loss(), q, p)),  # the primal and the residuals
        "default grad": jax.jit(jax.grad(loss())),
        "vjp half, per segment": jax.jit(lambda q, p: jax.vjp(loss(), q, p)),
        "grad, per segment": jax.jit(jax.grad(loss())),
        "grad, one segment": jax.jit(jax.grad(loss(reanchor=case["steps"]))),
    }
    for name, f in fns.items():  # compile (the "before" variants traced with the switch off), warm up
        with per_segment() if name in BEFORE else contextlib.nullcontext():
            jax.block_until_ready(f(q, p))
        jax.block_until_ready(f(q, p))
    return fns, (q, p)


def timed(fns, args):
    ts = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            ts[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(v) for name, v in ts.items()}


def main():
    cases = {c["name"]: c for c in CASES}
    lines = [f"jax {jax.__version__}, devices {jax.devices()}, {ROUNDS} rounds",
             "| case | N x steps | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for name in os.environ.get("CASES", DEFAULT).split(","):
        c = cases[name]
        t = timed(*variants(c))
        f = t["fused forward"]
        cells = [f"{t[k]:.2f}" if k == "fused forward" else f"{t[k]:.2f} ({t[k] / f:.2f}x)" for k in COLUMNS]
        lines.append(f"| {name} | {c['n']:,} x {c['steps']} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    report("grad_parts.md", "\n".join(lines))


if __name__ == "__main__":
    main()
