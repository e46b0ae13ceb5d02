"""Lane independence: flat-array Hamiltonians with an elementwise flow run one system per element."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat
from tpjax.codegen.lanes import lanes
from tpjax.ir.ops import Op

FLAT_PENDULUM = lambda q, p: jnp.sum(0.5 * p**2 - jnp.cos(q))
QUARTIC = lambda q, p: jnp.sum(0.5 * p**2) + 0.5 * jnp.sum(q**2) + 0.1 * jnp.sum(q**4)
CHAIN = lambda q, p: jnp.sum(0.5 * p**2) + jnp.sum((q[1:] - q[:-1]) ** 2)  # couples neighbours
KEPLER = lambda q, p: 0.5 * jnp.sum(p**2) - 1.0 / jnp.sqrt(jnp.sum(q**2))  # couples the components


def state(n, dtype=jnp.float32):
    return jnp.linspace(0.1, 1.5, n, dtype=dtype), jnp.linspace(0.5, -0.5, n, dtype=dtype)


@pytest.mark.parametrize("H", [FLAT_PENDULUM, QUARTIC], ids=["pendulum", "quartic"])
def test_elementwise_flows_become_scalar_programs(H):
    comp = tpjax.compile(H, state(64))
    lane = lanes(comp)
    assert lane is not None and lane.traced.avals[0].shape == ()
    assert all(i.shape == () for i in lane.step.instrs) and lane.step.count(Op.SUM) == 0
    assert all(i.shape == () for i in lane.prologue.instrs)
    assert [i.op for i in lane.step.instrs] == [i.op for i in comp.step.instrs]  # the same arithmetic


@pytest.mark.parametrize("H", [CHAIN, KEPLER], ids=["chain", "kepler"])
def test_coupled_flows_are_not_split_into_lanes(H):
    assert lanes(tpjax.compile(H, state(8))) is None


def test_a_parameter_with_the_state_shape_keeps_the_flat_program():
    k = jnp.linspace(1.0, 2.0, 16, dtype=jnp.float32)
    assert lanes(tpjax.compile(lambda q, p: jnp.sum(0.5 * p**2 + 0.5 * k * q**2), state(16))) is None


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_default_path_on_a_flat_array_equals_the_xla_loop(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        q, p = state(1000, dtype)
        for H in (FLAT_PENDULUM, QUARTIC):
            got = jax.jit(lambda q, p, H=H: tpjax.integrate(H, (q, p), dt=0.01, steps=100))(q, p)
            ref = tpjax.integrate(H, (q, p), dt=0.01, steps=100, backend="xla")
            tol = 1e-5 if dtype == jnp.float32 else 1e-13  # float32: XLA may contract a*b+c differently
            np.testing.assert_allclose(got[0], ref[0], rtol=tol, atol=tol)
            np.testing.assert_allclose(got[1], ref[1], rtol=tol, atol=tol)
        sol = tpjax.trajectory(FLAT_PENDULUM, (q, p), dt=0.01, steps=100, save_every=20)
        ref = tpjax.trajectory(FLAT_PENDULUM, (q, p), dt=0.01, steps=100, save_every=20, backend="xla")
        np.testing.assert_allclose(sol.states[0], ref.states[0], rtol=1e-5)
        g = jax.grad(lambda q: jnp.sum(tpjax.integrate(FLAT_PENDULUM, (q, p), dt=0.01, steps=50)[0] ** 2))(q)
        g_ref = jax.grad(lambda q: jnp.sum(tpjax.integrate(FLAT_PENDULUM, (q, p), dt=0.01, steps=50,
                                                           backend="xla", adjoint="direct")[0] ** 2))(q)  # fmt: skip
        np.testing.assert_allclose(g, g_ref, rtol=1e-4 if dtype == jnp.float32 else 1e-10)


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="needs jax-triton (and the CUDA plugin) to cross-lower")
def test_the_flat_pendulum_default_call_cross_lowers_to_one_kernel():
    q, p = state(4096)
    f = lambda q, p: tpjax.integrate(FLAT_PENDULUM, (q, p), dt=0.01, steps=100)  # no vmap, no backend=
    text = _compat.lower_text_for_cuda(f, q, p)
    assert text.count("triton_kernel_call") == 1 and "while" not in text


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 7, 4097])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_the_flat_pendulum_kernel_matches_xla_on_gpu(n, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        q, p = state(n, dtype)
        got = tpjax.integrate(FLAT_PENDULUM, (q, p), dt=0.01, steps=200)
        ref = tpjax.integrate(FLAT_PENDULUM, (q, p), dt=0.01, steps=200, backend="xla")
        tol = 1e-5 if dtype == jnp.float32 else 1e-12
        np.testing.assert_allclose(got[0], ref[0], rtol=tol, atol=tol)
