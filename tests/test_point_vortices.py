"""Point vortices (tpjax.PointVortices): Kirchhoff's equations as a Poisson structure, against physics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax


def vortex_energy(gamma):
    """H(r) = -(1/4 pi) sum_{i<j} Gamma_i Gamma_j log |r_i - r_j|^2 (the planar interaction energy)."""
    g = jnp.asarray(gamma)

    def H(r):
        n = r.shape[0]
        i, j = np.triu_indices(n, 1)
        d2 = jnp.sum((r[i] - r[j]) ** 2, axis=-1)
        return -jnp.sum(g[i] * g[j] * jnp.log(d2)) / (4 * jnp.pi)

    return H


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_two_equal_vortices_corotate_at_the_known_rate(x64):
    """Two vortices of circulation G a distance d apart rotate rigidly at Omega = 2 G / (2 pi d^2)."""
    G, d = 1.5, 1.0
    r0 = jnp.array([[d / 2, 0.0], [-d / 2, 0.0]])
    T, n = 0.8, 800
    r = tpjax.integrate(vortex_energy([G, G]), r0, dt=T / n, steps=n, structure=tpjax.PointVortices([G, G]))
    a = 2 * G / (2 * np.pi * d**2) * T
    want = np.array([[np.cos(a), np.sin(a)], [-np.cos(a), -np.sin(a)]]) * d / 2
    np.testing.assert_allclose(r, want, atol=1e-6)  # midpoint, order 2 at dt = 1e-3


def test_four_vortices_keep_impulse_and_angular_impulse_over_1e5_steps(x64):
    gamma = (1.0, -0.5, 0.8, 0.3)
    r0 = jnp.array([[1.0, 0.1], [-0.4, 0.9], [-0.6, -0.7], [0.5, -0.8]])
    pv = tpjax.PointVortices(gamma)
    H = vortex_energy(gamma)
    sol = jax.jit(lambda r: tpjax.trajectory(H, r, dt=1e-3, steps=100_000, save_every=1000, structure=pv))(r0)
    px, py, lz = sol.casimirs
    g = np.asarray(gamma)
    states = np.asarray(sol.states)
    np.testing.assert_allclose(px, states[..., 0] @ g, rtol=1e-15)  # the Casimirs are what they claim
    np.testing.assert_allclose(lz, np.sum(states**2, axis=-1) @ g, rtol=1e-15)
    for c in (px, py, lz):
        assert float(jnp.max(jnp.abs(c - c[0]))) <= 1e-12 * float(jnp.abs(c[0])), c
    assert float(jnp.max(sol.energy_error)) < 1e-6  # bounded energy error, no drift
    assert float(jnp.max(jnp.abs(sol.states[-1] - r0))) > 0.1  # the vortices did move


def test_point_vortex_flow_matches_an_independent_rk4(x64):
    gamma = (1.0, -0.5, 0.8)
    r0 = jnp.array([[1.0, 0.1], [-0.4, 0.9], [-0.6, -0.7]])
    H = vortex_energy(gamma)
    g = jnp.asarray(gamma)[:, None]

    def f(r):  # Gamma_i x_i' = dH/dy_i, Gamma_i y_i' = -dH/dx_i, written out by hand
        dH = jax.grad(H)(r)
        return jnp.stack([dH[:, 1], -dH[:, 0]], axis=-1) / g

    def rk4(r, h):
        k1 = f(r)
        k2 = f(r + h / 2 * k1)
        k3 = f(r + h / 2 * k2)
        return r + h / 6 * (k1 + 2 * k2 + 2 * k3 + f(r + h * k3))

    ref = jax.lax.fori_loop(0, 4000, lambda _, r: rk4(r, 1e-4), r0)
    got = tpjax.integrate(H, r0, dt=2e-4, steps=2000, structure=tpjax.PointVortices(gamma))
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_point_vortices_under_vmap_and_grad(x64):
    gamma = (1.0, 1.0)
    pv = tpjax.PointVortices(gamma)
    H = vortex_energy(gamma)
    r0 = jnp.array([[0.5, 0.0], [-0.5, 0.0]])
    batch = jnp.stack([r0, 2 * r0])
    out = jax.vmap(lambda r: tpjax.integrate(H, r, dt=0.01, steps=50, structure=pv))(batch)
    np.testing.assert_allclose(out[0], tpjax.integrate(H, r0, dt=0.01, steps=50, structure=pv), rtol=1e-12)

    def loss(r, adjoint):
        return jnp.sum(tpjax.integrate(H, r, dt=0.01, steps=50, structure=pv, adjoint=adjoint)[0] ** 2)

    np.testing.assert_allclose(jax.grad(loss)(r0, None), jax.grad(loss)(r0, "direct"), rtol=1e-8)


def test_point_vortices_refuse_bad_input():
    with pytest.raises(ValueError, match="nonzero"):
        tpjax.PointVortices([1.0, 0.0])
    pv = tpjax.PointVortices([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        tpjax.integrate(vortex_energy([1.0, 2.0, 3.0]), jnp.zeros((2, 2)), dt=0.1, steps=1, structure=pv)
    with pytest.raises(ValueError, match="does not apply"):
        tpjax.integrate(vortex_energy([1.0, 2.0, 3.0]), jnp.ones((3, 2)), dt=0.1, steps=1, structure=pv,
                        method="leapfrog")  # fmt: skip
    with pytest.raises(TypeError, match="state r must be an array or a number, got str"):
        pv.check_state("r")
    with pytest.raises(TypeError, match=r"state r must be floating point, got int32; e\.g\. r\.astype"):
        pv.check_state(jnp.zeros((3, 2), jnp.int32))
