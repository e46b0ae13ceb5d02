"""tpjax.integrate / trajectory on the canonical zoo: physics as the oracle (DESIGN.md section 8)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.codegen import reference

from .hamiltonians import ZOO, pendulum

jax.config.update("jax_enable_x64", True)


def _rk4(H, state, dt, steps):
    """An independent high-accuracy reference: classical RK4 on qdot = dH/dp, pdot = -dH/dq."""

    def f(z):
        gq, gp = jax.grad(H, argnums=(0, 1))(*z)
        return (gp, -gq)

    def step(z, _):
        k1 = f(z)
        k2 = f(jax.tree.map(lambda a, b: a + 0.5 * dt * b, z, k1))
        k3 = f(jax.tree.map(lambda a, b: a + 0.5 * dt * b, z, k2))
        k4 = f(jax.tree.map(lambda a, b: a + dt * b, z, k3))
        return jax.tree.map(lambda a, b, c, d, e: a + dt / 6 * (b + 2 * c + 2 * d + e), z, k1, k2, k3, k4), None

    return jax.lax.scan(step, state, length=steps)[0]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_program_gradients_equal_jax_grad(name):
    H, s0 = ZOO[name]
    q0, p0 = s0()
    dt = 0.05
    # one symplectic-Euler step exercises both compiled gradient blocks: dH/dp at (q0, p0), dH/dq at (q1, p0)
    q1, p1 = tpjax.integrate(H, (q0, p0), dt=dt, steps=1, method="symplectic_euler")
    gq, gp = jax.grad(H, argnums=0), jax.grad(H, argnums=1)
    q1_ref = q0 + dt * gp(q0, p0)
    p1_ref = p0 - dt * gq(q1_ref, p0)
    np.testing.assert_allclose(q1, q1_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(p1, p1_ref, rtol=1e-12, atol=1e-13)
    # the FSAL prologue is the compiled dH/dq
    comp = tpjax.compile(H, (q0, p0), method="leapfrog")
    force = reference.run(comp.prologue, {"ptr_q": q0, "ptr_p": p0})["ptr_force"]
    np.testing.assert_allclose(force, gq(q0, p0), rtol=1e-12, atol=1e-13)


def _order(H, s0, method, dts, T):
    ref = _rk4(H, s0, T / 20000, 20000)
    errs = []
    for dt in dts:
        q, p = tpjax.integrate(H, s0, dt=dt, steps=round(T / dt), method=method)
        errs.append(float(jnp.sqrt(jnp.sum((q - ref[0]) ** 2) + jnp.sum((p - ref[1]) ** 2))))
    return np.polyfit(np.log(dts), np.log(errs), 1)[0], errs


@pytest.mark.parametrize("name", ["pendulum", "kepler", "henon_heiles"])
@pytest.mark.parametrize(("method", "order", "dts"), [
    ("symplectic_euler", 1, [0.01, 0.005, 0.0025, 0.00125]),
    ("leapfrog", 2, [0.04, 0.02, 0.01, 0.005]),
    ("yoshida4", 4, [0.08, 0.04, 0.02, 0.01]),
])  # fmt: skip
def test_convergence_order(name, method, order, dts):
    H, s0 = ZOO[name]
    slope, errs = _order(H, s0(), method, dts, T=0.8)
    assert abs(slope - order) <= 0.15, (slope, errs)


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("method", ["symplectic_euler", "leapfrog", "yoshida4"])
def test_symplecticity(name, method):
    H, s0 = ZOO[name]
    q0, p0 = s0()
    n = q0.size

    def step(z):
        q, p = tpjax.integrate(H, (z[:n], z[n:]), dt=0.1, steps=3, method=method)
        return jnp.concatenate([q, p])

    M = jax.jacfwd(step)(jnp.concatenate([q0, p0]))
    Om = jnp.block([[jnp.zeros((n, n)), jnp.eye(n)], [-jnp.eye(n), jnp.zeros((n, n))]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) <= 1e-12


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("method", ["leapfrog", "yoshida4", "position_verlet"])
def test_symmetric_methods_are_reversible(name, method):
    H, s0 = ZOO[name]
    q0, p0 = s0()
    q1, p1 = tpjax.integrate(H, (q0, p0), dt=0.05, steps=20, method=method)
    q2, p2 = tpjax.integrate(H, (q1, p1), dt=-0.05, steps=20, method=method)
    np.testing.assert_allclose(q2, q0, atol=1e-13)
    np.testing.assert_allclose(p2, p0, atol=1e-13)


def test_pendulum_energy_bounded_over_1e5_steps():
    q0, p0 = jnp.array([2.0]), jnp.array([0.0])  # large amplitude: strongly nonlinear
    sol = tpjax.trajectory(pendulum, (q0, p0), dt=0.05, steps=100_000, save_every=50)
    err = np.asarray(sol.energy_error)
    tenth = len(err) // 10
    first, last = err[1:tenth].max(), err[-tenth:].max()
    assert last <= 1.05 * first and last < 5e-3, (first, last)  # bounded: no secular drift
    assert sol.states[0].shape == (2001, 1) and sol.ts.shape == (2001,)
    np.testing.assert_allclose(sol.ts[-1], 5000.0)


def test_gradient_through_1000_steps_matches_finite_differences():
    def loss(q0, k):
        H = lambda q, p: 0.5 * jnp.sum(p**2) - k * jnp.sum(jnp.cos(q))
        q, p = tpjax.integrate(H, (q0, jnp.zeros_like(q0)), dt=0.01, steps=1000)
        return jnp.sum(q**2) + jnp.sum(p)

    q0, k = jnp.array([0.7, -0.3]), 1.3
    gq, gk = jax.jit(jax.grad(loss, argnums=(0, 1)))(q0, k)
    eps = 1e-6
    fd_k = (loss(q0, k + eps) - loss(q0, k - eps)) / (2 * eps)
    fd_q = jnp.array([(loss(q0.at[i].add(eps), k) - loss(q0.at[i].add(-eps), k)) / (2 * eps) for i in range(2)])
    np.testing.assert_allclose(gk, fd_k, rtol=1e-6)
    np.testing.assert_allclose(gq, fd_q, rtol=1e-6)


def test_jit_vmap_ensemble_with_per_member_dt_and_parameters():
    Q0 = jnp.linspace(0.1, 1.0, 8)[:, None]
    P0 = jnp.zeros_like(Q0)
    dts = jnp.linspace(0.01, 0.02, 8)
    ks = jnp.linspace(0.5, 2.0, 8)

    def run(q, p, dt, k):
        return tpjax.integrate(lambda q, p: 0.5 * jnp.sum(p**2) - k * jnp.sum(jnp.cos(q)), (q, p), dt=dt, steps=50)

    Q, P = jax.jit(jax.vmap(run))(Q0, P0, dts, ks)
    for i in (0, 5):
        q, p = run(Q0[i], P0[i], dts[i], ks[i])
        np.testing.assert_allclose(Q[i], q, rtol=1e-13)
        np.testing.assert_allclose(P[i], p, rtol=1e-13)
    assert Q.shape == Q0.shape and Q.dtype == Q0.dtype


def test_same_pytree_shapes_and_dtypes_float32():
    s = (jnp.ones((2, 3), jnp.float32), jnp.zeros((2, 3), jnp.float32))
    out = tpjax.integrate(ZOO["pendulum"][0], s, dt=0.01, steps=10)
    assert isinstance(out, tuple) and [x.shape for x in out] == [(2, 3)] * 2
    assert all(x.dtype == jnp.float32 for x in out)
    out = tpjax.integrate(ZOO["pendulum"][0], [s[0], s[1]], dt=0.01, steps=0)
    assert isinstance(out, list)
    np.testing.assert_array_equal(out[0], s[0])


def test_explicit_method_refuses_non_separable_h():
    def H(q, p):
        return 0.5 * jnp.sum(p**2) * (1 + jnp.sum(q**2))

    for m in ("leapfrog", "symplectic_euler", "yoshida4"):
        with pytest.raises(ValueError, match="separable"):
            tpjax.integrate(H, (jnp.ones(2), jnp.ones(2)), dt=0.1, steps=1, method=m)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"H": lambda q, p: q + p}, ValueError, "H must return a scalar"),
    ({"state": (jnp.ones(2), jnp.ones(3))}, ValueError, "same shape"),
    ({"state": (jnp.ones(2), jnp.ones(2, jnp.float32))}, ValueError, "same dtype"),
    ({"state": jnp.ones(2)}, TypeError, r"\(q, p\) pair"),
    ({"state": (jnp.ones(2), jnp.ones(2), jnp.ones(2))}, TypeError, r"\(q, p\) pair"),
    ({"state": (jnp.ones(2, jnp.int32), jnp.ones(2, jnp.int32))}, TypeError, "floating point"),
    ({"steps": 2.5}, TypeError, "steps must be"),
    ({"steps": -1}, ValueError, "steps must be >= 0"),
    ({"steps": True}, TypeError, "steps must be"),
    ({"method": "rk45"}, ValueError, "method='rk45' is not a known integrator"),
    ({"dt": float("nan")}, ValueError, "dt must be finite"),
    ({"dt": float("inf")}, ValueError, "dt must be finite"),
    ({"dt": jnp.ones(2)}, ValueError, "dt must be a scalar"),
    ({"H": 3.0}, TypeError, "H must be a callable"),
])  # fmt: skip
def test_bad_input_raises_clear_error(kwargs, exc, match):
    args = {"H": ZOO["harmonic"][0], "state": (jnp.ones(2), jnp.zeros(2)), "dt": 0.1, "steps": 3}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        tpjax.integrate(args.pop("H"), args.pop("state"), **args)


def test_negative_dt_integrates_backward_and_seed_euler_would_drift():
    H = ZOO["harmonic"][0]
    s = (jnp.array([1.0]), jnp.array([0.0]))
    fwd = tpjax.integrate(H, s, dt=0.01, steps=100)
    back = tpjax.integrate(H, s, dt=-0.01, steps=100)
    np.testing.assert_allclose(fwd[0], back[0], rtol=1e-12)  # q(t) is even for this start
    np.testing.assert_allclose(fwd[1], -back[1], rtol=1e-12)


def test_without_fsal_gives_the_same_trajectory():
    H, s0 = ZOO["pendulum"]
    comp = tpjax.compile(H, s0())
    nof = comp.without_fsal()
    assert comp.carries_force and not nof.carries_force and nof.prologue is None
    assert nof.step.count(tpjax.ir.Op.ELEM) > comp.step.count(tpjax.ir.Op.ELEM)  # one more sin(q) per step
    from tpjax import adjoint

    outs = []
    for c in (comp, nof):
        st = c.method.stepper(c)
        outs.append(adjoint.solve(st.step, st.initial((), s0()), jnp.float64(0.01), st.params, steps=50)[:2])
    for a, b in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
