"""CPU CI cross-lowers the CUDA path: impl="triton" primitives emit jax-triton's custom call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tpjax import _compat
from tpjax import primitives as P

pytestmark = pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")


def _count(text):
    return text.count("triton_kernel_call")


def test_symp_step_triton_lowering_and_vmap():
    s, f = jnp.ones(1000, jnp.float32), jnp.full(1000, 0.5, jnp.float32)
    dt = jnp.float32(0.1)
    txt = _compat.lower_text_for_cuda(lambda s, f, dt: P.symp_step(s, f, dt, 0.5, impl="triton"), s, f, dt)
    assert _count(txt) >= 1
    txt = _compat.lower_text_for_cuda(lambda s, f, dt: P.symp_step(s, f, dt, 0.5, impl="xla"), s, f, dt)
    assert _count(txt) == 0
    # vmap folds the batch into the kernel's flat grid: still one launch
    S = jnp.ones((8, 1000), jnp.float32)
    txt = _compat.lower_text_for_cuda(jax.vmap(lambda s, f: P.symp_step(s, f, dt, 0.5, impl="triton")), S, S)
    assert _count(txt) >= 1


def test_poisson_and_lie_cross_triton_lowering_so3_and_grad():
    L, g = jnp.ones((64, 3), jnp.float32), jnp.ones((64, 3), jnp.float32)
    for fn in (lambda L, g: P.lie_cross(L, g, impl="triton"),
               lambda L, g: P.poisson_j(g, L, kind="LIE", impl="triton"),
               lambda L, g: P.poisson_j(g, kind="NEGATE", impl="triton") + L):  # fmt: skip
        assert _count(_compat.lower_text_for_cuda(fn, L, g)) >= 1
    # reverse mode through the kernel: the transposes bind the same primitive, lowered to kernels too
    loss = lambda L, g: jnp.sum(P.lie_cross(L, g, impl="triton") ** 2)
    assert _count(_compat.lower_text_for_cuda(jax.grad(loss), L, g)) >= 2  # forward + transposed kernel


def test_impl_param_does_not_change_cpu_results():
    L, g = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 3)), jnp.float32), jnp.ones(3, jnp.float32)
    np.testing.assert_array_equal(P.lie_cross(L, g, impl="triton"), P.lie_cross(L, g))
    want = np.cross(np.asarray(L, np.float64), np.asarray(g, np.float64))  # an independent cross product
    np.testing.assert_allclose(P.lie_cross(L, g, impl="triton"), want, rtol=0, atol=1e-6)
