"""Tao's explicit method for non-separable H: order, explicitness, extended-space symplecticity, energy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402
from tpjax.adjoint import solve  # noqa: E402
from tpjax.integrators import TRIPLE_JUMP4, Tao  # noqa: E402


def H_tao(q, p):  # Tao 2016, sec. IV: non-separable, bounded orbits
    return 0.5 * (q**2 + 1.0) * (p**2 + 1.0)


def H_double_pendulum(q, p):  # unit masses and lengths, g = 1, canonical angles and momenta
    d = q[0] - q[1]
    T = (p[0] ** 2 + 2 * p[1] ** 2 - 2 * p[0] * p[1] * jnp.cos(d)) / (2 * (1 + jnp.sin(d) ** 2))
    return T - 2 * jnp.cos(q[0]) - jnp.cos(q[1])


CASES = {
    "tao_H": (H_tao, (jnp.array(0.0), jnp.array(-3.0))),
    "double_pendulum": (H_double_pendulum, (jnp.array([0.5, -0.3]), jnp.array([0.2, 0.1]))),
}


def _stepper(H, z0, method):
    comp = tpjax.compile(H, z0, method=method)
    st = comp.method.stepper(comp)
    return st, jax.jit(lambda z, dt: st.step(st.params, z, dt))


def _final(H, z0, method, T, n):
    st, step = _stepper(H, z0, method)
    z = st.initial(st.params, z0)
    for _ in range(n):
        z = step(z, T / n)
    return np.concatenate([np.ravel(a) for a in z[:2]])


def _slope(H, z0, method, ns, T=2.0):
    ref = np.concatenate([np.ravel(a) for a in tpjax.integrate(H, z0, dt=T / 200, steps=200, method="gauss8")])
    errs = [np.max(np.abs(_final(H, z0, method, T, n) - ref)) for n in ns]
    return np.polyfit(np.log(T / np.array(ns)), np.log(errs), 1)[0], errs


@pytest.mark.parametrize("case", list(CASES))
def test_order_2(case):
    H, z0 = CASES[case]
    slope, errs = _slope(H, z0, "tao", (100, 200, 400))
    assert abs(slope - 2) <= 0.15, (slope, errs)


def test_composed_with_the_triple_jump_is_order_4():
    tao4 = Tao(gammas=TRIPLE_JUMP4)
    assert tao4.order == 4 and tao4.symmetric and Tao().order == 2
    H, z0 = CASES["tao_H"]
    slope, errs = _slope(H, z0, tao4, (200, 400, 800))
    assert abs(slope - 4) <= 0.15, (slope, errs)


@pytest.mark.parametrize("case", list(CASES))
def test_explicit_no_while_loop(case):
    H, z0 = CASES[case]
    jaxpr = str(jax.make_jaxpr(lambda z: tpjax.integrate(H, z, dt=0.1, steps=5, method="tao"))(z0))
    assert "while" not in jaxpr and "custom_root" not in jaxpr
    assert "while" in str(jax.make_jaxpr(lambda z: tpjax.integrate(H, z, dt=0.1, steps=5, method="gauss4"))(z0))


@pytest.mark.parametrize("case", list(CASES))
def test_symplectic_in_the_extended_space_and_reversible(case):
    H, z0 = CASES[case]
    st, step = _stepper(H, z0, Tao(gammas=TRIPLE_JUMP4) if case == "tao_H" else "tao")
    z = st.initial(st.params, z0)
    z = step(z, 0.1)  # a state with x != q
    d = np.size(z0[0])
    flat = lambda v: jnp.concatenate([jnp.ravel(a) for a in step(tuple(v.reshape(4, d)), 0.1)])
    M = jax.jacfwd(flat)(jnp.concatenate([jnp.ravel(a) for a in z]))
    I, O = jnp.eye(d), jnp.zeros((d, d))  # coordinates (q, x), momenta (p, y): order q, p, x, y
    Om = jnp.block([[O, I, O, O], [-I, O, O, O], [O, O, O, I], [O, O, -I, O]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) <= 1e-12
    back = step(step(z, 0.1), -0.1)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(back, z, strict=True)) <= 1e-13


@pytest.mark.parametrize("case", list(CASES))
def test_energy_bounded_over_1e5_steps(case):
    H, z0 = CASES[case]
    st, _ = _stepper(H, z0, "tao")
    run = jax.jit(lambda z: solve(st.step, z, 0.05, st.params, steps=100_000, save_every=500, adjoint="direct"))
    _, saved = run(st.initial(st.params, z0))
    E = np.asarray(jax.vmap(H)(saved[0], saved[1]))
    err = np.abs(E / float(H(*z0)) - 1)
    assert err.max() <= 0.02, err.max()
    assert err[100:].max() <= 1.5 * err[:100].max()  # no secular drift over the second half


def test_default_omega_binds_the_copies_better_than_a_small_one():
    """The default omega = 20: about as accurate as a much larger binding (50) and clearly better than a
    weak one (2), on Tao's example at dt = 0.05 over 2 * 10^4 steps."""
    H, z0 = CASES["tao_H"]

    def worst(omega):
        st, _ = _stepper(H, z0, Tao(omega=omega))
        run = jax.jit(lambda z: solve(st.step, z, 0.05, st.params, steps=20_000, save_every=100, adjoint="direct"))
        _, saved = run(st.initial(st.params, z0))
        return float(jnp.max(jnp.abs(jax.vmap(H)(saved[0], saved[1]) / H(*z0) - 1)))

    default, weak, strong = worst(Tao().omega), worst(2.0), worst(50.0)
    assert Tao().omega == 20.0
    assert default <= 0.5 * weak and default <= 1.5 * strong, (default, weak, strong)


def test_gradients_match_direct_and_finite_differences():
    q0, p0 = jnp.array([0.5, -0.3]), jnp.array([0.2, 0.1])

    def loss(k, adjoint):
        H = lambda q, p: H_double_pendulum(q, p) + k * jnp.sum(q**4)
        q, p = tpjax.integrate(H, (q0, p0), dt=0.05, steps=30, method="tao", adjoint=adjoint)
        return jnp.sum(q**2) + jnp.sum(q * p)

    g_direct = jax.grad(loss)(0.2, "direct")
    fd = (loss(0.2 + 1e-6, "direct") - loss(0.2 - 1e-6, "direct")) / 2e-6
    assert abs(float(g_direct - fd)) <= 1e-6
    for adjoint in ("reversible", "checkpointed"):
        assert abs(float(jax.grad(loss)(0.2, adjoint) - g_direct)) <= 1e-9 * (1 + abs(float(g_direct)))


def test_jit_vmap_and_the_separability_error_suggests_tao():
    H, (q0, p0) = CASES["double_pendulum"]
    f = jax.jit(jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.05, steps=20, method="tao")))
    Q, P = jnp.stack([q0, 0.5 * q0]), jnp.stack([p0, p0])
    one = tpjax.integrate(H, (Q[1], P[1]), dt=0.05, steps=20, method="tao")
    np.testing.assert_allclose(f(Q, P)[0][1], one[0], atol=1e-13)
    with pytest.raises(ValueError, match="method='tao'"):
        tpjax.integrate(H, (q0, p0), dt=0.05, steps=2, method="leapfrog")
    with pytest.raises(ValueError, match="omega"):
        Tao(omega=-1.0)
    with pytest.raises(ValueError, match="gammas"):
        Tao(gammas=(0.5, 0.4))
