"""Time-dependent H(q, p, t) with t0=: the driven oscillator against its analytic solution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402
from tpjax.time_dependent import extend, takes_time  # noqa: E402

F, W = 0.5, 1.7  # q'' = -q + F cos(W t)


def H_driven(q, p, t):
    return 0.5 * p**2 + 0.5 * q**2 - F * q * jnp.cos(W * t)


def exact(q0, p0, t0, t):
    """Analytic solution: particular C cos(W t) plus the free oscillation matching (q0, p0) at t0."""
    C = F / (1 - W**2)
    a, b = q0 - C * np.cos(W * t0), p0 + C * W * np.sin(W * t0)
    q = a * np.cos(t - t0) + b * np.sin(t - t0) + C * np.cos(W * t)
    p = -a * np.sin(t - t0) + b * np.cos(t - t0) - C * W * np.sin(W * t)
    return q, p


Q0, P0, T0, T = 0.3, -0.2, 0.7, 3.0


@pytest.mark.parametrize(("method", "order"), [("leapfrog", 2), ("yoshida4", 4), ("implicit_midpoint", 2),
                                               ("gauss4", 4)])  # fmt: skip
def test_driven_oscillator_order(method, order):
    run = jax.jit(
        lambda dt, n: tpjax.integrate(H_driven, (jnp.array(Q0), jnp.array(P0)), dt=dt, steps=n, method=method, t0=T0),
        static_argnums=1,
    )
    ns = (20, 40, 80)
    qe, pe = exact(Q0, P0, T0, T0 + T)
    errs = []
    for n in ns:
        q, p = run(T / n, n)
        errs.append(max(abs(float(q) - qe), abs(float(p) - pe)))
    slope = np.polyfit(np.log(T / np.array(ns)), np.log(errs), 1)[0]
    assert abs(slope - order) <= 0.15, (errs, slope)
    assert errs[-1] <= {2: 3e-4, 4: 1e-6}[order]


def test_trajectory_times_energies_and_negative_dt():
    sol = tpjax.trajectory(H_driven, (jnp.array(Q0), jnp.array(P0)), dt=-0.01, steps=200, save_every=20, t0=T0,
                           method="yoshida4")  # fmt: skip
    ts = np.asarray(sol.ts)
    np.testing.assert_allclose(ts, T0 - 0.2 * np.arange(11), atol=1e-14)
    qe, pe = exact(Q0, P0, T0, ts)
    assert np.abs(np.asarray(sol.states[0]) - qe).max() <= 1e-8
    assert np.abs(np.asarray(sol.states[1]) - pe).max() <= 1e-8
    E = jax.vmap(H_driven)(sol.states[0], sol.states[1], sol.ts)  # energies are H(q, p, t), not the extended K
    np.testing.assert_allclose(sol.energies, E, atol=1e-13)
    assert sol.states[0].shape == (11,)


def test_reversible_and_symplectic_in_the_extended_space():
    z0 = (jnp.array(Q0), jnp.array(P0))
    z1 = tpjax.integrate(H_driven, z0, dt=0.05, steps=40, t0=T0)
    back = tpjax.integrate(H_driven, z1, dt=-0.05, steps=40, t0=T0 + 2.0)
    assert max(abs(float(a - b)) for a, b in zip(back, z0, strict=True)) <= 1e-13
    K, ze, _ = extend(H_driven, z0, T0)
    comp = tpjax.compile(K, ze, method="leapfrog")
    st = comp.method.stepper(comp)
    flat = lambda v: jnp.concatenate(st.step(st.params, st.initial(st.params, (v[:2], v[2:])), 0.1)[:2])
    M = jax.jacfwd(flat)(jnp.concatenate(ze))
    Om = jnp.block([[jnp.zeros((2, 2)), jnp.eye(2)], [-jnp.eye(2), jnp.zeros((2, 2))]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) <= 1e-12


def test_arity_detection():
    assert takes_time(H_driven)
    assert takes_time(lambda q, p, t: 0.0)
    assert not takes_time(lambda q, p: 0.0)
    assert not takes_time(lambda q, p, alpha=0.25: 0.0)  # a parameter with a default is not time
    assert not takes_time(lambda *xs: 0.0)
    assert not takes_time(lambda L, t, c: 0.0, "so3")  # canonical structures only


def test_autonomous_H_only_shifts_the_times():
    H = lambda q, p: 0.5 * p**2 + 0.5 * q**2
    z0 = (jnp.array(Q0), jnp.array(P0))
    a = tpjax.trajectory(H, z0, dt=0.1, steps=10, save_every=5, t0=2.0)
    b = tpjax.trajectory(H, z0, dt=0.1, steps=10, save_every=5)
    np.testing.assert_allclose(a.ts, b.ts + 2.0)
    np.testing.assert_array_equal(a.states[0], b.states[0])


def test_vector_state_grad_and_vmap_over_t0():
    def H(q, p, t):
        return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2) - F * jnp.sum(q) * jnp.cos(W * t)

    q0, p0 = jnp.array([0.3, -0.1]), jnp.array([-0.2, 0.4])
    loss = lambda t0: jnp.sum(tpjax.integrate(H, (q0, p0), dt=0.05, steps=40, method="leapfrog", t0=t0)[0])
    g = jax.grad(loss)(T0)
    fd = (loss(T0 + 1e-6) - loss(T0 - 1e-6)) / 2e-6
    assert abs(float(g - fd)) <= 1e-7
    qs = jax.vmap(lambda t0: tpjax.integrate(H, (q0, p0), dt=0.05, steps=40, t0=t0)[0])(jnp.array([0.0, T0]))
    np.testing.assert_allclose(qs[1], tpjax.integrate(H, (q0, p0), dt=0.05, steps=40, t0=T0)[0], atol=1e-14)
    with pytest.raises(ValueError, match="t0 must be a scalar"):
        tpjax.integrate(H, (q0, p0), dt=0.05, steps=4, t0=jnp.zeros(2))


def test_parameter_gradient_reversible_matches_direct():
    def loss(f, adjoint):
        H = lambda q, p, t: 0.5 * p**2 + 0.5 * q**2 - f * q * jnp.cos(W * t)
        q, p = tpjax.integrate(H, (jnp.array(Q0), jnp.array(P0)), dt=0.05, steps=40, t0=T0, adjoint=adjoint)
        return q**2 + p

    g_direct = jax.grad(loss)(F, "direct")
    fd = (loss(F + 1e-6, "direct") - loss(F - 1e-6, "direct")) / 2e-6
    assert abs(float(g_direct - fd)) <= 1e-7
    assert abs(float(jax.grad(loss)(F, "reversible") - g_direct)) <= 1e-12
