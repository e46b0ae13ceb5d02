"""float64 kernels at a constant float32 cannot hold, under Triton's interpreter, against XLA.

Group "literals" of ``tests._interpret``. Triton 3.6 rounds a Python float to float32 where it meets a
float64 tensor in a comparison or ``tl.maximum`` / ``tl.minimum``; the generators write such constants as
float64 tensors (``_Emitter.literal``). Each potential here has a force that jumps at q = 0.1 (a ``where`` on
``q < 0.1``; ``maximum(q, 0.1)``, whose derivative is a ``q >= 0.1`` mask; ``clip`` to [-0.1, 0.1]), and three
of the five systems start between 0.1 and float32(0.1) = 0.1 + 1.49e-9: a rounded threshold sends them down
the other branch and their momenta differ from XLA's by about 0.02 after 3 steps. Unrolled and tile forms.
"""

from __future__ import annotations

import numpy as np

STEPS, DT = 3, 0.01
Q0 = 0.1 + np.array([-2e-9, 5e-10, 1e-9, 1.2e-9, 3e-9])


def _potentials():
    import jax.numpy as jnp

    kinetic = lambda p: 0.5 * jnp.sum(p**2)  # noqa: E731
    return {
        "where": lambda q, p: kinetic(p) + jnp.sum(jnp.where(q < 0.1, 0.5 * q**2, 0.5 * q**2 + 2.0 * (q - 0.1))),
        "maximum": lambda q, p: kinetic(p) + jnp.sum(0.5 * q**2 + 3.0 * jnp.maximum(q, 0.1) ** 2),
        "clip": lambda q, p: kinetic(p) + jnp.sum(q**2 + 5.0 * jnp.clip(q, -0.1, 0.1)),
    }


def cases() -> list[str]:
    return [f"{name}-{form}" for name in ("where", "maximum", "clip") for form in ("unrolled", "tile")]


def run_literals(results: dict) -> None:
    import jax
    import jax.numpy as jnp

    import tpjax
    from tests._interpret import NpArg
    from tpjax.codegen import triton as TG
    from tpjax.codegen.triton_source import generate

    q = np.stack([Q0, np.full(5, 0.3)], axis=1)  # (5, 2): the second component far from the threshold
    p = np.zeros_like(q)
    for name, H in _potentials().items():
        comp = tpjax.compile(H, (jnp.zeros(2, jnp.float64), jnp.zeros(2, jnp.float64)))
        want = jax.vmap(lambda a, b, H=H: tpjax.integrate(H, (a, b), dt=DT, steps=STEPS, backend="xla"))(q, p)
        for form in ("unrolled", "tile"):
            src = generate(comp, form=form)
            table = TG.launch_constants(src)[2]
            extra = [NpArg(np.asarray(table, np.float64))] if table is not None else []
            oq, op = np.zeros_like(q), np.zeros_like(p)
            TG.load_kernel(src)[(2,)](NpArg(q), NpArg(p), NpArg(np.array([DT])), *extra, 5, STEPS, NpArg(oq),
                                      NpArg(op), BLOCK=4, FAST_MATH=False)  # fmt: skip
            err = max(np.abs(oq - np.asarray(want[0])).max(), np.abs(op - np.asarray(want[1])).max())
            results[f"{name}-{form}"] = [float(err), 1e-12]
