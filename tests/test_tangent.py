"""Tangent maps: Lyapunov exponents and MEGNO on regular and chaotic orbits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402
from tests.hamiltonians import harmonic, henon_heiles, kepler, pendulum  # noqa: E402
from tpjax import tangent  # noqa: E402


def hh_state(x, y, py, E=1.0 / 6.0):
    """A Henon-Heiles state at energy E (px > 0 from the energy)."""
    V = 0.5 * (x * x + y * y) + x * x * y - y**3 / 3.0
    return jnp.array([x, y]), jnp.array([np.sqrt(2 * (E - V) - py**2), py])


HARMONIC = (harmonic, (jnp.array([1.0, -0.5]), jnp.array([0.0, 0.3])), 0.05, 20_000)
KEPLER = (kepler, (jnp.array([1.0, 0.0]), jnp.array([0.0, 1.2])), 0.01, 100_000)  # e = 0.44, t = 1000
PENDULUM = (pendulum, (jnp.array([1.0]), jnp.array([0.0])), 0.05, 40_000)  # libration, t = 2000
CHAOTIC_HH = (henon_heiles, hh_state(0.0, -0.1, 0.0), 0.05, 20_000)  # E = 1/6, t = 1000


def _estimates(case, method=None):
    H, z, dt, n = case
    return jax.jit(lambda z: tangent.variational(H, z, dt=dt, steps=n, method=method))(z)


@pytest.mark.parametrize("case", [HARMONIC, KEPLER], ids=["harmonic", "kepler"])
def test_lyapunov_is_near_zero_on_integrable_orbits(case):
    lam, _ = _estimates(case)
    assert abs(float(lam)) < 0.05
    if case is KEPLER:  # linear tangent growth: lambda(t) ~ ln(t) / t
        t = case[2] * case[3]
        assert float(lam) <= 2 * np.log(t) / t


@pytest.mark.parametrize("case", [KEPLER, PENDULUM], ids=["kepler", "pendulum"])
def test_megno_tends_to_2_on_quasi_periodic_orbits(case):
    _, meg = _estimates(case)
    assert abs(float(meg) - 2.0) < 0.1


def test_harmonic_oscillator_is_isochronous_megno_0():
    lam, meg = _estimates(HARMONIC)
    assert abs(float(meg)) < 0.01 and abs(float(lam)) < 1e-4


def test_chaotic_henon_heiles_orbit():
    lam, meg = _estimates(CHAOTIC_HH)
    assert float(lam) > 0.02
    t = CHAOTIC_HH[2] * CHAOTIC_HH[3]
    assert float(meg) > 0.25 * float(lam) * t  # <Y> ~ lambda t / 2 grows linearly
    # independent check: two orbits 1e-10 apart separate by many orders of magnitude (gauss8, no tangent map)
    H, (q, p), _, _ = CHAOTIC_HH
    run = jax.jit(lambda q: tpjax.integrate(H, (q, p), dt=0.05, steps=8000, method="yoshida4")[0])
    sep = float(jnp.max(jnp.abs(run(q) - run(q + jnp.array([0.0, 1e-10])))))
    assert sep > 1e-4


def test_one_step_matches_the_jacobian_of_the_step_and_is_symplectic():
    H, z, dt, _ = CHAOTIC_HH
    comp = tpjax.compile(H, z, method="leapfrog")
    st = comp.method.stepper(comp)
    v0 = (jnp.array([1.0, 0.0]), jnp.array([0.0, 0.0]))
    lam, _ = tangent.variational(H, z, dt=dt, steps=1, method="leapfrog", tangent0=v0)

    def flat(x):
        out = st.step(st.params, st.initial(st.params, (x[:2], x[2:])), dt)
        return jnp.concatenate(out[:2])

    M = jax.jacfwd(flat)(jnp.concatenate(z))
    assert abs(float(lam) - float(jnp.log(jnp.linalg.norm(M[:, 0])) / dt)) <= 1e-12
    Om = jnp.block([[jnp.zeros((2, 2)), jnp.eye(2)], [-jnp.eye(2), jnp.zeros((2, 2))]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) <= 1e-12


@pytest.mark.parametrize("method", ["leapfrog", "gauss4", "tao"])
def test_trajectory_tangent_option(method):
    H, z, _, _ = CHAOTIC_HH
    sol = tpjax.trajectory(H, z, dt=0.05, steps=400, save_every=100, method=method, tangent=True)
    assert sol.lyapunov.shape == sol.megno.shape == sol.ts.shape == (5,)
    assert float(sol.lyapunov[0]) == 0.0 and float(sol.megno[0]) == 0.0
    lam = tpjax.lyapunov(H, z, dt=0.05, steps=400, method=method)
    meg = tpjax.megno(H, z, dt=0.05, steps=400, method=method)
    assert abs(float(sol.lyapunov[-1] - lam)) <= 1e-12 and abs(float(sol.megno[-1] - meg)) <= 1e-9
    assert tpjax.trajectory(H, z, dt=0.05, steps=10, method=method).lyapunov is None


def test_vmap_and_time_dependent():
    H, _, _, _ = PENDULUM
    Q = jnp.array([[0.5], [1.0]])
    lams = jax.vmap(lambda q: tpjax.lyapunov(H, (q, jnp.zeros(1)), dt=0.05, steps=2000))(Q)
    one = tpjax.lyapunov(H, (Q[1], jnp.zeros(1)), dt=0.05, steps=2000)
    np.testing.assert_allclose(lams[1], one, rtol=1e-12)
    driven = lambda q, p, t: 0.5 * p**2 + 0.5 * q**2 - 0.5 * q * jnp.cos(1.7 * t)  # linear: lambda = 0
    lam = tpjax.lyapunov(driven, (jnp.array(0.3), jnp.array(0.0)), dt=0.05, steps=20_000, t0=0.5)
    assert abs(float(lam)) < 0.05
