"""Gauss-Legendre collocation (gauss4/6/8): tables, order, symplecticity, symmetry, Casimirs, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402
from tpjax.integrators.gauss import GaussConvergenceError, GaussLegendre, butcher  # noqa: E402
from tpjax.integrators.implicit import ConvergenceError  # noqa: E402

METHODS = {"gauss4": 2, "gauss6": 3, "gauss8": 4}


def H_ns(q, p):  # non-separable (Tao 2016's example), 2 degrees of freedom
    return 0.5 * jnp.sum((q**2 + 1.0) * (p**2 + 1.0)) + 0.1 * q[0] * q[1]


Z0 = (jnp.array([0.3, -0.2]), jnp.array([0.2, 0.5]))


def _step(method, H=H_ns, z0=Z0, structure="canonical"):
    comp = tpjax.compile(H, z0, method=method, structure=structure)
    st = comp.method.stepper(comp)
    return jax.jit(lambda z, dt: st.step(st.params, z, dt))


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_tables_satisfy_the_order_conditions(s):
    A, b, c = butcher(s)
    k = np.arange(1, 2 * s + 1)
    np.testing.assert_allclose([b @ c ** (m - 1) for m in k], 1.0 / k, atol=1e-15)  # B(2s): quadrature order 2s
    for m in range(1, s + 1):
        np.testing.assert_allclose(A @ c ** (m - 1), c**m / m, atol=1e-15)  # C(s): collocation
        np.testing.assert_allclose((b * c ** (m - 1)) @ A, b * (1 - c**m) / m, atol=1e-15)  # D(s)
    M = b[:, None] * A + (b[:, None] * A).T - np.outer(b, b)
    assert np.abs(M).max() < 1e-15  # b_i a_ij + b_j a_ji = b_i b_j: symplectic
    np.testing.assert_allclose(c + c[::-1], 1.0, atol=1e-15)  # symmetric nodes
    assert (butcher(1)[0] == 0.5).all()  # s = 1 is the midpoint rule


def test_names_and_properties():
    for name, s in METHODS.items():
        m = tpjax.METHODS[name]
        assert isinstance(m, GaussLegendre) and m.stages == s and m.order == 2 * s and m.symmetric
    with pytest.raises(ValueError, match="stages"):
        GaussLegendre(stages=0)


@functools.cache
def _reference(T):
    ref_step, z = _step("gauss8"), Z0
    for _ in range(256):
        z = ref_step(z, T / 256)
    return np.concatenate([np.asarray(a) for a in z])


@pytest.mark.parametrize("name", list(METHODS))
def test_convergence_order_on_a_nonseparable_H(name):
    T = 2.0
    step, ref = _step(name), _reference(T)
    ns = {"gauss4": (8, 16, 32), "gauss6": (8, 12, 16), "gauss8": (4, 6, 8)}[name]
    errs = []
    for n in ns:
        z = Z0
        for _ in range(n):
            z = step(z, T / n)
        errs.append(np.max(np.abs(np.concatenate([np.asarray(a) for a in z]) - ref)))
    slope = np.polyfit(np.log(T / np.array(ns)), np.log(errs), 1)[0]
    assert abs(slope - 2 * METHODS[name]) <= 0.15, (errs, slope)


@pytest.mark.parametrize("name", list(METHODS))
def test_symplectic_and_symmetric(name):
    step = _step(name)
    flat = lambda x: jnp.concatenate(step((x[:2], x[2:]), 0.2))
    x0 = jnp.concatenate(Z0)
    M = jax.jacfwd(flat)(x0)
    Om = jnp.block([[jnp.zeros((2, 2)), jnp.eye(2)], [-jnp.eye(2), jnp.zeros((2, 2))]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) <= 1e-12
    back = step(step(Z0, 0.2), -0.2)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(back, Z0, strict=True)) <= 1e-13


@pytest.mark.parametrize("name", ["gauss4", "gauss6"])
def test_rigid_body_quadratic_casimir(name):
    I = jnp.array([1.0, 2.0, 3.0])
    H = lambda L: 0.5 * jnp.sum(L**2 / I) + 0.1 * L[0] ** 4  # not the free body: no explicit splitting
    L0 = jnp.array([1.0, 0.1, 0.5])
    sol = tpjax.trajectory(H, L0, dt=0.05, steps=200, save_every=20, structure="so3", method=name)
    assert float(jnp.max(sol.casimir_error)) <= 1e-12
    assert float(jnp.max(sol.energy_error)) <= 1e-6


def test_energy_bounded_over_1e5_steps():
    H = lambda q, p: 0.5 * (q**2 + 1.0) * (p**2 + 1.0)
    sol = tpjax.trajectory(H, (jnp.array(0.0), jnp.array(-3.0)), dt=0.1, steps=100_000, save_every=100,
                           method="gauss4")  # fmt: skip
    err = np.asarray(sol.energy_error)
    assert err.max() <= 1e-4  # gauss4 at dt = 0.1 on a large orbit: ~5e-5, oscillating
    half = len(err) // 2
    assert err[half:].max() <= 1.5 * err[:half].max() + 1e-14  # no secular drift


def test_gradients_match_direct_and_finite_differences():
    def loss(k, adjoint):
        H = lambda q, p: 0.5 * jnp.sum(p**2 * (1.0 + 0.1 * q**2)) + k * jnp.sum(q**4)
        q, p = tpjax.integrate(H, Z0, dt=0.1, steps=8, method="gauss4", adjoint=adjoint)
        return jnp.sum(q**2) + jnp.sum(q * p)

    g_direct = jax.grad(loss)(0.3, "direct")
    fd = (loss(0.3 + 1e-6, "direct") - loss(0.3 - 1e-6, "direct")) / 2e-6
    assert abs(float(g_direct - fd)) <= 1e-6
    for adjoint in ("reversible", "checkpointed"):
        g = jax.grad(loss)(0.3, adjoint)
        assert abs(float(g - g_direct)) <= 1e-9 * (1 + abs(float(g_direct)))


def test_jit_and_vmap():
    f = jax.jit(jax.vmap(lambda q, p: tpjax.integrate(H_ns, (q, p), dt=0.1, steps=10, method="gauss6")))
    Q, P = jnp.stack([Z0[0], 2 * Z0[0]]), jnp.stack([Z0[1], Z0[1]])
    out = f(Q, P)
    one = tpjax.integrate(H_ns, (Q[1], P[1]), dt=0.1, steps=10, method="gauss6")
    np.testing.assert_allclose(out[0][1], one[0], atol=1e-13)


def test_nonconvergence_is_nan_inside_jit_and_an_error_outside():
    bad = GaussLegendre(stages=2, max_iter=1)
    with pytest.raises(GaussConvergenceError, match="Gauss-Legendre collocation did not converge") as e:
        tpjax.integrate(H_ns, Z0, dt=0.5, steps=3, method=bad)
    assert isinstance(e.value, ConvergenceError)
    q, _ = jax.jit(lambda z: tpjax.integrate(H_ns, z, dt=0.5, steps=3, method=bad))(Z0)
    assert bool(jnp.all(jnp.isnan(q)))


def test_heavy_top_casimirs_on_se3():
    def H(L, G):  # heavy top: the two quadratic Casimirs G.G and L.G are kept by any Gauss method
        return 0.5 * jnp.sum(L**2 / jnp.array([1.0, 1.5, 2.5])) + 0.7 * G[2]

    z0 = (jnp.array([0.3, 0.8, 0.2]), jnp.array([0.1, 0.2, 0.97]))
    sol = tpjax.trajectory(H, z0, dt=0.05, steps=200, save_every=20, structure="se3", method="gauss6")
    assert max(float(jnp.max(c)) for c in sol.casimir_error) <= 1e-12
    assert float(jnp.max(sol.energy_error)) <= 1e-8
