"""``tpjax.trajectory``'s diagnostics against oracles computed here, not against its own numbers.

Energies are recomputed as ``vmap(H)(states)`` and Casimirs from the saved states; a run with a known,
large, analytic energy error must report exactly that error (so frozen energies fail); the heavy top is
checked against a hand-written RK4 of the Euler-Poisson equations (so a flipped gravity term fails) and
against an energy bound.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.integrators import ImplicitMidpoint

jax.config.update("jax_enable_x64", True)

I3 = np.array([1.0, 2.0, 3.0])
CHI, MG = np.array([0.0, 0.0, 1.0]), 1.0


def pendulum(q, p):
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))


def rigid(L):
    return 0.5 * jnp.sum(L**2 / jnp.asarray(I3))


def top(L, G):
    return 0.5 * jnp.sum(L**2 / jnp.asarray(I3)) + MG * jnp.dot(G, jnp.asarray(CHI))


def top_state():
    G = np.array([0.3, 0.2, 1.0])
    return jnp.array([0.5, 0.3, 1.0]), jnp.asarray(G / np.linalg.norm(G))


#: a deliberately loose solver: Casimirs then drift visibly, so frozen Casimirs cannot pass
LOOSE = ImplicitMidpoint(solver="fixed_point", tol=1e-5)


def test_energies_are_H_of_the_saved_states_canonical():
    q0, p0 = jnp.array([1.0, 2.0]), jnp.array([0.0, 0.1])
    sol = tpjax.trajectory(pendulum, (q0, p0), dt=0.1, steps=200, save_every=10, method="symplectic_euler")
    Q, P = sol.states
    assert Q.shape == (21, 2) and sol.energies.shape == (21,)
    np.testing.assert_allclose(sol.ts, 0.1 * 10 * np.arange(21), rtol=1e-14)
    np.testing.assert_allclose(sol.energies, jax.vmap(pendulum)(Q, P), rtol=1e-14, atol=1e-14)
    final = tpjax.integrate(pendulum, (q0, p0), dt=0.1, steps=200, method="symplectic_euler")
    np.testing.assert_allclose(Q[-1], final[0], rtol=1e-13)
    np.testing.assert_allclose(P[-1], final[1], rtol=1e-13)
    assert np.ptp(np.asarray(sol.energies)) > 1e-3  # symplectic Euler at dt=0.1: the energy oscillates
    e = np.asarray(sol.energies)
    np.testing.assert_allclose(sol.energy_error, np.abs(e - e[0]) / abs(e[0]), rtol=1e-12)


@pytest.mark.parametrize("method", ["rigid_body", "implicit_midpoint", LOOSE], ids=["rigid_body", "midpoint", "loose"])
def test_so3_energies_and_casimir_recomputed(method):
    L0 = jnp.array([1.0, 0.1, 0.5])
    sol = tpjax.trajectory(rigid, L0, dt=0.2, steps=300, save_every=3, structure="so3", method=method)
    L = np.asarray(sol.states)
    assert L.shape == (101, 3)
    assert np.max(np.abs(L[-1] - L[0])) > 0.1  # the body tumbles: states are not frozen
    np.testing.assert_allclose(sol.energies, jax.vmap(rigid)(sol.states), rtol=1e-14)
    c = np.sum(L**2, axis=-1)
    np.testing.assert_allclose(sol.casimirs, c, rtol=1e-14)
    np.testing.assert_allclose(sol.casimir_error, np.abs(c - c[0]) / c[0], rtol=1e-10, atol=1e-15)
    if method is LOOSE:
        assert np.ptp(c) > 1e-7, "the loose solver should drift |L|^2 (else this check tests nothing)"


def test_se3_energies_and_casimirs_recomputed():
    sol = tpjax.trajectory(top, top_state(), dt=0.2, steps=300, save_every=3, structure="se3", method=LOOSE)
    L, G = (np.asarray(x) for x in sol.states)
    np.testing.assert_allclose(sol.energies, jax.vmap(top)(*sol.states), rtol=1e-14)
    gg, lg = np.sum(G * G, axis=-1), np.sum(L * G, axis=-1)
    np.testing.assert_allclose(sol.casimirs[0], gg, rtol=1e-14)
    np.testing.assert_allclose(sol.casimirs[1], lg, rtol=1e-14, atol=1e-15)
    assert np.ptp(gg) > 1e-8 and np.ptp(lg) > 1e-8, (np.ptp(gg), np.ptp(lg))  # they do drift here


@pytest.mark.parametrize("h", [0.5, 1.5, 1.9])
def test_leapfrog_reports_the_analytic_energy_error_of_the_harmonic_oscillator(h):
    """Leapfrog (kick-drift-kick) on H = (p^2 + q^2) / 2 conserves H_h = (p^2 + (1 - h^2/4) q^2) / 2
    exactly, so H(q_n, p_n) = H_h + h^2 q_n^2 / 8 at every step: from q0 = 1, p0 = 0 the energy error
    is h^2 (1 - q_n^2) / 8, as large as h^2 / 8 (0.45 at h = 1.9, near the stability limit h = 2)."""
    H = lambda q, p: 0.5 * (p**2 + q**2)
    q0, p0 = jnp.array(1.0), jnp.array(0.0)
    sol = tpjax.trajectory(H, (q0, p0), dt=h, steps=400, method="leapfrog")
    q = np.asarray(sol.states[0])
    Hh = 0.5 * (1.0 - h**2 / 4)
    np.testing.assert_allclose(sol.energies, Hh + h**2 * q**2 / 8, rtol=1e-12)
    err = np.asarray(sol.energy_error)
    np.testing.assert_allclose(err, (h**2 / 8) * (1 - q**2) / 0.5, rtol=1e-9, atol=1e-12)
    assert err.max() > 0.9 * h**2 / 4  # the reported drift reaches the analytic amplitude


# ---- the heavy top --------------------------------------------------------------------------------------
def top_rhs(z):  # Euler-Poisson equations, body frame: L' = L x Omega + mg Gamma x chi, Gamma' = Gamma x Omega
    L, G = z[:3], z[3:]
    w = L / I3
    return np.concatenate([np.cross(L, w) + MG * np.cross(G, CHI), np.cross(G, w)])


def rk4_saved(f, z, h, n, every):
    out = [z]
    for k in range(1, n + 1):
        k1 = f(z)
        k2 = f(z + 0.5 * h * k1)
        k3 = f(z + 0.5 * h * k2)
        k4 = f(z + h * k3)
        z = z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if k % every == 0:
            out.append(z)
    return np.array(out)


def test_heavy_top_follows_the_euler_poisson_reference_and_bounds_energy():
    dt, steps, k = 0.02, 250, 25  # t = 5
    sol = tpjax.trajectory(top, top_state(), dt=dt, steps=steps, save_every=k, structure="se3")
    ref = rk4_saved(top_rhs, np.concatenate([np.asarray(x) for x in top_state()]), dt / 10, steps * 10, k * 10)
    got = np.concatenate([np.asarray(x) for x in sol.states], axis=-1)
    assert np.ptp(ref[:, 3:], axis=0).max() > 0.1  # gravity makes Gamma move appreciably
    err = np.max(np.abs(got - ref))
    assert err < 2e-3, f"implicit midpoint vs RK4 reference: max state error {err:.2e}"
    assert float(np.max(sol.energy_error)) < 1e-4
    e_ref = jax.vmap(top)(jnp.asarray(ref[:, :3]), jnp.asarray(ref[:, 3:]))
    np.testing.assert_allclose(sol.energies, e_ref, rtol=1e-4)


def test_heavy_top_energy_bounded_over_many_steps():
    """H of the heavy top is quadratic, and the implicit midpoint rule keeps quadratic invariants: the
    energy error stays at round-off over 4000 steps (a wrong-signed gravity term gives O(1) drift)."""
    sol = tpjax.trajectory(top, top_state(), dt=0.05, steps=4000, save_every=40, structure="se3")
    assert float(np.max(sol.energy_error)) < 1e-12
    np.testing.assert_allclose(sol.energies, jax.vmap(top)(*sol.states), rtol=1e-13)
    L, G = (np.asarray(x) for x in sol.states)
    assert np.ptp(G, axis=0).max() > 0.1  # while the state moves
