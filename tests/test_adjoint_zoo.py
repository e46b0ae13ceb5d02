"""Gradients through tpjax.integrate on the zoo, for every adjoint: equal to direct backprop (1e-10) and
to central finite differences (1e-6), w.r.t. the initial state, a parameter of H and dt (x64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

from .hamiltonians import ZOO

jax.config.update("jax_enable_x64", True)


def _loss(name, method, adjoint, steps=60):
    H0, _ = ZOO[name]

    def loss(q0, p0, k, dt):
        H = lambda q, p: k * H0(q, p)
        q, p = tpjax.integrate(H, (q0, p0), dt=dt, steps=steps, method=method, adjoint=adjoint)
        return jnp.sum(q**2) + jnp.sum(jnp.sin(p))

    return loss


CASES = [(n, "leapfrog", a) for n in sorted(ZOO) for a in ("reversible", "checkpointed", "direct")]
CASES += [(n, "symplectic_euler", a) for n in ("pendulum", "kepler") for a in ("checkpointed", "direct")]
CASES += [("henon_heiles", "yoshida4", "reversible")]


@pytest.mark.parametrize(("name", "method", "adjoint"), CASES)
def test_gradients_match_direct_and_finite_differences(name, method, adjoint):
    q0, p0 = ZOO[name][1]()
    args = (q0, p0, 1.1, 0.02)
    g = jax.jit(jax.grad(_loss(name, method, adjoint), argnums=(0, 1, 2, 3)))(*args)
    g_direct = jax.jit(jax.grad(_loss(name, method, "direct"), argnums=(0, 1, 2, 3)))(*args)
    for a, b in zip(g, g_direct, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # central finite differences along a random direction of (q0, p0, k, dt)
    rng = np.random.default_rng(0)
    v = [rng.normal(size=np.shape(x)) for x in args]
    f = _loss(name, method, "direct")
    eps = 1e-6
    plus = f(*[x + eps * d for x, d in zip(args, v, strict=True)])
    minus = f(*[x - eps * d for x, d in zip(args, v, strict=True)])
    fd = (plus - minus) / (2 * eps)
    dot = sum(float(jnp.sum(a * d)) for a, d in zip(g, v, strict=True))
    np.testing.assert_allclose(dot, fd, rtol=1e-6, atol=1e-8)


def test_rigid_body_and_implicit_midpoint_gradients():
    I = jnp.array([1.0, 2.0, 3.0])
    L0 = jnp.array([1.0, 0.1, 0.5])

    def loss(L0, s, method, adjoint):
        H = lambda L: 0.5 * jnp.sum(L**2 / (s * I))
        L = tpjax.integrate(H, L0, dt=0.05, steps=40, structure="so3", method=method, adjoint=adjoint)
        return L[0] * L[1] + L[2]

    for method in ("rigid_body", "implicit_midpoint"):
        g = jax.grad(loss, argnums=(0, 1))(L0, 1.2, method, "reversible")
        gd = jax.grad(loss, argnums=(0, 1))(L0, 1.2, method, "direct")
        for a, b in zip(g, gd, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
        eps = 1e-6
        fd = (loss(L0, 1.2 + eps, method, "direct") - loss(L0, 1.2 - eps, method, "direct")) / (2 * eps)
        np.testing.assert_allclose(g[1], fd, rtol=1e-6)


def test_grad_under_vmap_and_jit_with_per_member_dt():
    H0 = ZOO["pendulum"][0]
    Q0 = jnp.stack([ZOO["pendulum"][1]()[0] * s for s in (0.5, 1.0, 1.5)])
    dts = jnp.array([0.01, 0.02, 0.03])

    def loss(q0, dt):
        q, p = tpjax.integrate(H0, (q0, jnp.zeros_like(q0)), dt=dt, steps=50)
        return jnp.sum(q**2)

    g = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(Q0, dts)
    for i in range(3):
        gi = jax.grad(loss, argnums=(0, 1))(Q0[i], dts[i])
        np.testing.assert_allclose(g[0][i], gi[0], rtol=1e-12)
        np.testing.assert_allclose(g[1][i], gi[1], rtol=1e-12)


def test_forward_mode_through_integrate():
    H0 = ZOO["kepler"][0]
    q0, p0 = ZOO["kepler"][1]()
    f = lambda q0: tpjax.integrate(H0, (q0, p0), dt=0.01, steps=100)[0]
    J_fwd = jax.jacfwd(f)(q0)
    J_rev = jax.jacrev(f)(q0)
    np.testing.assert_allclose(J_fwd, J_rev, rtol=1e-10, atol=1e-12)
