"""The default gradient against the fused forward on the GPU, zoo cases side by side (issue 10 item 3).

For each case of ``bench_zoo.CASES`` named in ``CASES`` (comma-separated; default below): the fused forward
(``jax.vmap`` of ``tpjax.integrate``), ``jax.grad`` of sum(q_N^2) through it with the default adjoint, their
ratio, the number of fused-loop kernel launches in the gradient's HLO, and its largest difference from the
same gradient with ``adjoint="checkpointed", backend="xla"`` (relative to that gradient's largest entry).
Medians of 5 after warm-up, ms. ``TPJAX_ROOT``: import tpjax from that tree instead (to time two versions
in one call).

Run (GPU): ``CASES=pendulum_vmap,kepler,fpu_d8,mlp_64 python3 benchmarks/bench_grad_kernels.py``
"""

import os
import sys

sys.path.insert(0, os.environ.get("TPJAX_ROOT", os.getcwd()))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import tpjax  # noqa: E402
from benchmarks._timing import median_ms  # noqa: E402
from benchmarks.bench_zoo import CASES, vmapped_final_q  # noqa: E402
from tests._hlo import kernel_names  # noqa: E402

DEFAULT = "pendulum_vmap,kepler,fpu_d8,mlp_64,fpu_d32"


def run_case(case):
    run, (q, p) = vmapped_final_q(case)
    fwd = jax.jit(run())
    grad = jax.jit(jax.grad(lambda q, p: jnp.sum(run()(q, p) ** 2)))
    ref = jax.jit(jax.grad(lambda q, p: jnp.sum(run(adjoint="checkpointed", backend="xla")(q, p) ** 2)))
    t_fwd, t_grad = median_ms(fwd, q, p, reps=5), median_ms(grad, q, p, reps=5)
    launches = len(kernel_names(grad.lower(q, p).as_text()))
    a, b = np.asarray(grad(q, p)), np.asarray(ref(q, p))
    diff = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    size = f"{case['n']:,} x {case['steps']}"
    cells = [case["name"], size, f"{t_fwd:.2f}", f"{t_grad:.2f}", f"{t_grad / t_fwd:.2f}x",
             str(launches), f"{diff:.1e}"]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main():
    cases = {c["name"]: c for c in CASES}
    print(f"jax {jax.__version__}, devices {jax.devices()}, tpjax from {os.path.dirname(tpjax.__file__)}")
    print("| case | N x steps | fused forward | default grad | grad / forward | kernels | vs checkpointed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in os.environ.get("CASES", DEFAULT).split(","):
        print(run_case(cases[name]), flush=True)


if __name__ == "__main__":
    main()
