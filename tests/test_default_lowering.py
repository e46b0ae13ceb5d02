"""The default call (no ``backend=``) cross-lowered for CUDA from the CPU shows the fused kernel a GPU runs.

Issue 10's list: the flat pendulum, a vmapped yoshida4 pendulum, the distance-matrix Lennard-Jones
cluster with a cutoff (6 atoms unrolled, 32 atoms in the tile form), FPU chains of d = 32 (unrolled) and
d = 128 (too long to unroll: the tile form, ``codegen.triton_tile``), and an MLP potential (64 hidden units)
each lower to exactly one ``triton_kernel_call``.
The lowering really compiles the kernel to PTX (sm_90), so a kernel
that Triton cannot compile fails here. What these kernels compute is checked under Triton's interpreter
(tests/test_interpreted_kernels.py) and on the GPU (tests/test_codegen_vector.py, ``-m gpu``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat

pytestmark = pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")


def kinetic(p):
    return 0.5 * jnp.sum(p**2)


def lennard_jones(q, rc=2.5):
    n = q.shape[0]
    d = q[:, None, :] - q[None, :, :]
    r2 = jnp.sum(d**2, axis=-1) + jnp.eye(n, dtype=q.dtype)
    inv6 = 1.0 / r2**3
    mask = (r2 < rc**2) & ~jnp.eye(n, dtype=bool)
    return 0.5 * jnp.sum(jnp.where(mask, 4.0 * (inv6**2 - inv6), 0.0))


def fpu(q, alpha=0.25):
    x = jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)])
    d = x[1:] - x[:-1]
    return jnp.sum(0.5 * d**2 + alpha / 3.0 * d**3)


def mlp(width=64, d=4):
    rng = np.random.default_rng(0)
    W1 = jnp.asarray(rng.standard_normal((d, width)) / np.sqrt(d), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal(width) / np.sqrt(width), jnp.float32)
    return lambda q: jnp.dot(jnp.tanh(q @ W1), w2) + 0.5 * jnp.sum(q**2)


def _ensemble(V, shape, method="leapfrog"):
    H = lambda q, p: kinetic(p) + V(q)
    return jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=100, method=method))


CASES = {
    "pendulum_flat": (
        lambda q, p: tpjax.integrate(lambda q, p: jnp.sum(0.5 * p**2 - jnp.cos(q)), (q, p), dt=0.01, steps=100),
        (4096,),
    ),  # fmt: skip
    "pendulum_vmap_yoshida4": (_ensemble(lambda q: -jnp.cos(q), (), "yoshida4"), (512,)),
    "lennard_jones_6": (_ensemble(lennard_jones, (6, 2)), (64, 6, 2)),
    "fpu_32": (_ensemble(fpu, (32,)), (64, 32)),
    "fpu_128": (_ensemble(fpu, (128,)), (16, 128)),
    "lennard_jones_32": (_ensemble(lennard_jones, (32, 2)), (16, 32, 2)),
    "mlp_64": (_ensemble(mlp(), (4,)), (64, 4)),
}


#: sm_90 compiles of 6-16 s each on 2 cores: run by `make test-slow` (CI runs it after `make test`).
SLOW = ("lennard_jones_6", "fpu_32", "mlp_64")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(CASES)])
def test_default_call_cross_lowers_to_one_fused_kernel(name):
    f, shape = CASES[name]
    q = jax.ShapeDtypeStruct(shape, jnp.float32)
    assert _compat.lower_text_for_cuda(f, q, q).count("triton_kernel_call") == 1


def test_fpu_128_is_the_tile_form():
    from tpjax.codegen.triton_source import generate
    from tpjax.executors.choice import kernel_for

    z = jnp.zeros((128,), jnp.float32)
    comp = tpjax.compile(lambda q, p: kinetic(p) + fpu(q), (z, z))
    executor, why = kernel_for(comp, fast_math=False)
    assert executor is not None and why is None
    assert "form=tile" in generate(comp).splitlines()[1]
