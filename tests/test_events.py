"""Events: terminal sign changes of cond_fn(t, state), located inside the step by bisection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ellipk

import tpjax

jax.config.update("jax_enable_x64", True)


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def kepler(q, p):
    return 0.5 * jnp.sum(p * p) - 1.0 / jnp.sqrt(jnp.sum(q * q))


def test_pendulum_crossing_q0_per_member_matches_the_elliptic_quarter_period():
    q0 = jnp.array([0.3, 1.0, 2.0, 2.8])
    run = jax.jit(jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=0.005, steps=600, method="yoshida4",
                                                      event=tpjax.Event(lambda t, s: s[0]))))  # fmt: skip
    sol = run(q0)
    exact = ellipk(np.sin(np.asarray(q0) / 2) ** 2)  # T/4 = K(m), m = sin^2(q0/2), for omega = 1
    assert exact[3] > 600 * 0.005  # q0=2.8 does not reach q = 0 within the run
    assert sol.event_happened.tolist() == [True, True, True, False]
    np.testing.assert_allclose(sol.event_time[:3], exact[:3], atol=1e-8)
    assert np.isnan(sol.event_time[3])
    np.testing.assert_allclose(sol.final[0][:3], 0.0, atol=1e-12)  # stopped members sit on the surface
    np.testing.assert_allclose(sol.t_final[:3], sol.event_time[:3])
    np.testing.assert_allclose(sol.ts[:, -1], sol.t_final)
    free = tpjax.integrate(pendulum, (q0[3], 0.0 * q0[3]), dt=0.005, steps=600, method="yoshida4")
    np.testing.assert_array_equal(sol.final[0][3], free[0])  # the unstopped member ran on unchanged
    np.testing.assert_array_equal(sol.states[0][:, 0], q0)


def test_kepler_pericentre_from_the_sign_change_of_q_dot_p():
    v = jnp.array([0.7, 0.85, 0.95])  # start at apocentre r = 1 with tangential speed v
    run = jax.vmap(lambda v: tpjax.trajectory(kepler, (jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]) * v), dt=2e-3,
                                              steps=1500, method="yoshida4",
                                              event=tpjax.Event(lambda t, s: jnp.dot(s[0], s[1]))))  # fmt: skip
    sol = run(v)
    a = 1.0 / (2.0 - np.asarray(v) ** 2)
    half_period = np.pi * a**1.5
    assert bool(jnp.all(sol.event_happened))
    np.testing.assert_allclose(sol.event_time, half_period, atol=1e-8)
    r = np.linalg.norm(np.asarray(sol.final[0]), axis=-1)
    np.testing.assert_allclose(r, 2 * a - 1.0, atol=1e-8)  # pericentre distance 2a - r_apo


def test_bisection_locates_the_numerical_crossing_to_roundoff():
    dt = 0.05
    sol = tpjax.trajectory(pendulum, (jnp.float64(1.0), jnp.float64(0.0)), dt=dt, steps=100,
                           event=tpjax.Event(lambda t, s: s[0]))  # fmt: skip
    t = float(sol.event_time)
    n = int(t // dt)
    before = tpjax.integrate(pendulum, (1.0, 0.0), dt=dt, steps=n)
    for theta, sign in ((t / dt - n - 1e-12, 1), (t / dt - n + 1e-12, -1)):  # 1e-12 of a step either side
        q = tpjax.integrate(pendulum, before, dt=theta * dt, steps=1)[0]
        assert sign * float(q) > 0


def test_non_terminal_event_records_the_time_and_runs_on():
    kw = dict(dt=0.01, steps=300)
    sol = tpjax.trajectory(pendulum, (1.0, 0.0), event=tpjax.Event(lambda t, s: s[0], terminal=False), **kw)
    stop = tpjax.trajectory(pendulum, (1.0, 0.0), event=tpjax.Event(lambda t, s: s[0]), **kw)
    np.testing.assert_allclose(sol.event_time, stop.event_time, rtol=1e-14)
    np.testing.assert_array_equal(sol.final[0], tpjax.integrate(pendulum, (1.0, 0.0), **kw)[0])


def test_events_refuse_grad_triton_and_save_grids():
    ev = tpjax.Event(lambda t, s: s[0])
    f = lambda q: tpjax.trajectory(pendulum, (q, 0.0), dt=0.01, steps=200, event=ev).event_time
    with pytest.raises(NotImplementedError, match="cannot be differentiated"):
        jax.grad(f)(1.0)
    with pytest.raises(NotImplementedError, match="backend='triton' cannot run events"):
        tpjax.trajectory(pendulum, (1.0, 0.0), dt=0.01, steps=10, event=ev, backend="triton")
    with pytest.raises(ValueError, match="SaveAt may only set t0, t1 and fn"):
        tpjax.trajectory(pendulum, (1.0, 0.0), dt=0.01, steps=10, event=ev, saveat=tpjax.SaveAt(steps=2))
    with pytest.raises(ValueError, match="must return a scalar"):
        tpjax.trajectory(pendulum, (jnp.ones(2), jnp.ones(2)), dt=0.01, steps=10, event=tpjax.Event(lambda t, s: s[0]))
