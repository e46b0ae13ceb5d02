"""GPU: the tile form of the fused kernel (``codegen.triton_tile``) against the XLA loop.

Every Hamiltonian the tile form writes (``tests._interpret_tile.zoo``: the small zoo, the shapes zoo's
Lennard-Jones cluster, relu well and FPU chain, FPU d = 128, 32 Lennard-Jones atoms with a smooth cutoff, a
pendulum chain of d = 100), forced to the tile form, ensembles of 1, 7 and 4097 members, float32 and float64,
final state and saved rows, against ``tpjax.trajectory(backend="xla")``; and the default gradient of a vmapped integrate
whose forward run is a tile kernel against ``adjoint="direct"`` on the XLA loop.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tests._interpret_tile import zoo
from tests.hamiltonians import TILE_ZOO
from tpjax.codegen import triton as TG
from tpjax.executors.choice import on_cuda

jax.config.update("jax_enable_x64", True)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not on_cuda(), reason="needs a CUDA GPU with jax-triton")]

TOL = {"float32": 2e-4, "float64": 1e-9}
STEPS, EVERY = 200, 50


def _members(state, n, dtype):
    q0, p0 = state(getattr(jnp, dtype))
    rng = np.random.default_rng(n)
    jitter = lambda x: np.asarray(x)[None] + 0.02 * rng.standard_normal((n, *np.shape(x)))
    return jnp.asarray(jitter(q0), dtype), jnp.asarray(jitter(p0), dtype)


def _close(pairs, tol: float, refs) -> None:
    """Each (got, want) of ``pairs`` has want's shape and is within ``tol`` of it, relative to the largest
    component of ``refs`` (at least 1)."""
    scale = max([float(jnp.abs(r).max()) for r in refs] + [1.0])
    for got, want in pairs:
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", sorted(TOL))
@pytest.mark.parametrize("n", [1, 7, 4097])
@pytest.mark.parametrize("name", sorted(zoo()))
def test_tile_kernel_equals_xla(name, n, dtype):
    H, state = zoo()[name]
    comp = tpjax.compile(H, state(getattr(jnp, dtype)))
    q, p = _members(state, n, dtype)
    dt = 0.01
    qk, pk, Qk, Pk = TG.fused_integrate(comp, q, p, dt, STEPS, save_every=EVERY, form="tile")
    run = lambda a, b: tpjax.trajectory(H, (a, b), dt=dt, steps=STEPS, save_every=EVERY, backend="xla").states
    Q, P = jax.jit(jax.vmap(run))(q, p)  # (n, rows + 1, ...)
    _close(((qk, Q[:, -1]), (pk, P[:, -1]), (Qk, jnp.swapaxes(Q[:, 1:], 0, 1)), (Pk, jnp.swapaxes(P[:, 1:], 0, 1))),
           TOL[dtype], (Q, P))  # fmt: skip


@pytest.mark.parametrize("dtype", sorted(TOL))
@pytest.mark.parametrize("name", ["fpu_d128", "pendulum_chain_100", "lennard_jones_32"])
def test_default_call_runs_the_tile_kernel_and_equals_xla(name, dtype):
    H, state = TILE_ZOO[name]
    q, p = _members(state, 4097, dtype)
    fn = lambda backend: jax.jit(
        jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=STEPS, backend=backend))
    )
    assert "triton_kernel_call" in fn("auto").lower(q, p).as_text()
    (qk, pk), (qx, px) = fn("auto")(q, p), fn("xla")(q, p)
    _close(((qk, qx), (pk, px)), TOL[dtype], (qx, px))


@pytest.mark.parametrize("dtype", sorted(TOL))
@pytest.mark.parametrize("name", ["fpu_d128", "pendulum_chain_100"])
def test_default_gradient_through_a_tile_kernel_equals_direct(name, dtype):
    H, state = TILE_ZOO[name]
    q, p = _members(state, 7, dtype)

    def loss(q, dt, **kw):
        qf, pf = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=dt, steps=STEPS, **kw))(q, p)
        return jnp.sum(qf**2) + jnp.sum(pf)

    dt = jnp.asarray(0.01, dtype)
    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(q, dt)
    want = jax.jit(jax.grad(lambda x, y: loss(x, y, backend="xla", adjoint="direct"), argnums=(0, 1)))(q, dt)
    for a, b in zip(got, want, strict=True):  # each gradient relative to its own largest component
        _close(((a, b),), {"float32": 2e-3, "float64": 1e-9}[dtype], (b,))
