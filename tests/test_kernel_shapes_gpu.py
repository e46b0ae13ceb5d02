"""GPU: kernels of matrices of particles, masks, index arrays and dense layers against the XLA loop.

Every Hamiltonian of ``tests.hamiltonians.KERNEL_ZOO`` (Lennard-Jones with a cutoff, gravity through index
arrays, a tanh MLP with array weights, a relu well, an FPU chain of d = 24), ensembles of 1, 7 and 4097
members, float32 and float64: the default call (which runs the fused kernel on CUDA) against
``backend="xla"``, final state and saved trajectory. On the CPU the same kernels run under Triton's
interpreter (tests/test_interpreted_kernels.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tests.hamiltonians import KERNEL_ZOO
from tpjax.executors.choice import kernel_for, on_cuda

jax.config.update("jax_enable_x64", True)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not on_cuda(), reason="needs a CUDA GPU with jax-triton")]

TOL = {"float32": 2e-4, "float64": 1e-9}


def _members(name, n, dtype):
    q0, p0 = KERNEL_ZOO[name][1](getattr(jnp, dtype))
    rng = np.random.default_rng(n)
    jitter = lambda x: np.asarray(x)[None] + 0.02 * rng.standard_normal((n, *np.shape(x)))
    return jnp.asarray(jitter(q0), dtype), jnp.asarray(jitter(p0), dtype)


@pytest.mark.parametrize("dtype", sorted(TOL))
@pytest.mark.parametrize("n", [1, 7, 4097])
@pytest.mark.parametrize("name", sorted(KERNEL_ZOO))
def test_kernel_equals_xla(name, n, dtype):
    H, state = KERNEL_ZOO[name]
    comp = tpjax.compile(H, state(getattr(jnp, dtype)))
    assert kernel_for(comp, False)[0] is not None, kernel_for(comp, False)[1]
    q, p = _members(name, n, dtype)
    fn = lambda backend: jax.jit(jax.vmap(lambda a, b: tpjax.trajectory(
        H, (a, b), dt=0.01, steps=200, save_every=50, backend=backend).states))  # fmt: skip
    assert "triton_kernel_call" in fn("auto").lower(q, p).as_text()  # the default ran the kernel
    (Qk, Pk), (Qx, Px) = fn("auto")(q, p), fn("xla")(q, p)
    scale = max(float(jnp.abs(Qx).max()), float(jnp.abs(Px).max()), 1.0)
    for got, want in ((Qk, Qx), (Pk, Px)):
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=TOL[dtype] * scale)
