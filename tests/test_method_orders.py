"""Convergence order of every method in ``tpjax.METHODS``, through ``tpjax.integrate``, on every structure
the method supports, against references computed here (float64).

The references do not use tpjax: a hand-written classical RK4 in numpy with a tiny step (canonical
pendulum, free rigid body, heavy top), and the exact rotation for a harmonic oscillator under a callable
J(z). The measured log-log slope of the final-state error must be within 0.15 of the method's nominal
``order`` and, for the names listed in ``NOMINAL_ORDER``, of the order written here (so a method that
silently runs a lower-order scheme fails, and so does a relabelled ``order``). The one-step oracles below
tell apart methods of equal order (position Verlet is not leapfrog).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

jax.config.update("jax_enable_x64", True)

#: the current method names and their nominal global order (a rename or a dropped name fails below).
NOMINAL_ORDER = {
    "symplectic_euler": 1,
    "leapfrog": 2,
    "velocity_verlet": 2,
    "position_verlet": 2,
    "yoshida4": 4,
    "implicit_midpoint": 2,
    "rigid_body": 2,
    "rigid_body4": 4,
}
I3 = np.array([1.0, 2.0, 3.0])
CHI, MG = np.array([0.0, 0.0, 1.0]), 1.0
T = 1.0


def rk4(f, z, t, n):
    """Classical RK4 on a flat numpy vector, n steps of t / n (independent of tpjax)."""
    h = t / n
    for _ in range(n):
        k1 = f(z)
        k2 = f(z + 0.5 * h * k1)
        k3 = f(z + 0.5 * h * k2)
        k4 = f(z + h * k3)
        z = z + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return z


def pendulum_rhs(z):  # H = |p|^2 / 2 - sum cos q: q' = p, p' = -sin q
    q, p = np.split(z, 2)
    return np.concatenate([p, -np.sin(q)])


def rigid_rhs(L):  # Euler's equations L' = L x (L / I)
    return np.cross(L, L / I3)


def top_rhs(z):  # Euler-Poisson: L' = L x Omega + mg Gamma x chi, Gamma' = Gamma x Omega
    L, G = z[:3], z[3:]
    w = L / I3
    return np.concatenate([np.cross(L, w) + MG * np.cross(G, CHI), np.cross(G, w)])


def _pendulum():
    H = lambda q, p: 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))
    q0, p0 = np.array([1.0, 2.0]), np.array([0.0, 0.1])
    ref = np.split(rk4(pendulum_rhs, np.concatenate([q0, p0]), T, 4000), 2)
    return H, (jnp.asarray(q0), jnp.asarray(p0)), ref, lambda out: np.concatenate([np.asarray(x) for x in out])


def _rigid():
    H = lambda L: 0.5 * jnp.sum(L**2 / jnp.asarray(I3))
    L0 = np.array([1.0, 0.1, 0.5])
    return H, jnp.asarray(L0), rk4(rigid_rhs, L0, T, 4000), np.asarray


def _top():
    H = lambda L, G: 0.5 * jnp.sum(L**2 / jnp.asarray(I3)) + MG * jnp.dot(G, jnp.asarray(CHI))
    L0, G0 = np.array([0.5, 0.3, 1.0]), np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
    ref = rk4(top_rhs, np.concatenate([L0, G0]), T, 4000)
    return H, (jnp.asarray(L0), jnp.asarray(G0)), ref, lambda out: np.concatenate([np.asarray(x) for x in out])


def _symplectic_J(z):
    # built from z (no captured constant array: a J closing over an array constant currently fails to
    # compile, "zip() argument 2 is longer than argument 1" in the energy program)
    one, zero = jnp.ones_like(z[0]), jnp.zeros_like(z[0])
    return jnp.stack([jnp.stack([zero, one]), jnp.stack([-one, zero])])


def _poisson():  # harmonic oscillator z = (q, p) under J = [[0, 1], [-1, 0]]: exact rotation
    H = lambda z: 0.5 * jnp.sum(z**2)
    z0 = np.array([1.0, -0.4])
    c, s = np.cos(T), np.sin(T)
    ref = np.array([c * z0[0] + s * z0[1], -s * z0[0] + c * z0[1]])
    return H, jnp.asarray(z0), ref, np.asarray


PROBLEMS = {"canonical": _pendulum, "so3": _rigid, "se3": _top, "poisson": _poisson}
STRUCTURE_ARG = {"canonical": "canonical", "so3": "so3", "se3": "se3", "poisson": _symplectic_J}
FLOW = ("canonical", "so3", "se3", "poisson")  # "flow" methods apply to every structure with a flow


def _structures(m):
    return tuple(st for s in m.structures for st in (FLOW if s == "flow" else (s,)))


#: computed at import. Orders above 4 reach the RK4 reference's accuracy on these problems; the splitting
#: library's orders 6-10 are measured in test_methods_library.py (harmonic oscillator, exact solution).
CASES = [(name, s) for name, m in tpjax.METHODS.items() if m.order <= 4 for s in _structures(m)]


def slope(name, structure):
    order = tpjax.METHODS[name].order
    H, z0, ref, flat = PROBLEMS[structure]()
    ns = (8, 16, 32) if order >= 4 else (32, 64, 128)
    errs = []
    for n in ns:
        out = tpjax.integrate(H, z0, dt=T / n, steps=n, method=name, structure=STRUCTURE_ARG[structure])
        errs.append(np.max(np.abs(flat(out) - np.ravel(ref))))
    errs = np.array(errs)
    assert np.all(errs > 1e-13), f"{name}/{structure}: errors {errs} reach the reference's accuracy"
    return -np.polyfit(np.log(ns), np.log(errs), 1)[0], errs


def test_every_listed_name_is_a_method_and_every_method_has_a_problem():
    missing = sorted(set(NOMINAL_ORDER) - set(tpjax.METHODS))
    assert not missing, f"methods renamed or dropped from tpjax.METHODS: {missing}"
    for name, m in tpjax.METHODS.items():
        assert m.structures, name
        unknown = set(_structures(m)) - set(PROBLEMS)
        assert not unknown, f"{name}: no order-test problem for structures {unknown}; add one here"


@pytest.mark.parametrize("name", sorted(NOMINAL_ORDER))
def test_nominal_order_attribute(name):
    assert tpjax.METHODS[name].order == NOMINAL_ORDER[name]


@pytest.mark.parametrize(("name", "structure"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_measured_order(name, structure):
    measured, errs = slope(name, structure)
    nominal = tpjax.METHODS[name].order
    assert abs(measured - nominal) <= 0.15, f"{name}/{structure}: slope {measured:.3f}, errors {errs}"
    if name in NOMINAL_ORDER:
        assert abs(measured - NOMINAL_ORDER[name]) <= 0.15


# ---- one-step oracles: the stage sequence of each explicit splitting, written out by hand ------------
def _kick(q, p, c, h):
    return q, p - c * h * np.sin(q)


def _drift(q, p, c, h):
    return q + c * h * p, p


def _compose(stages, q, p, h):
    for f, c in stages:
        q, p = f(q, p, c, h)
    return q, p


W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
W0 = 1.0 - 2.0 * W1
LEAPFROG = [(_kick, 0.5), (_drift, 1.0), (_kick, 0.5)]
ONE_STEP = {
    "symplectic_euler": [(_drift, 1.0), (_kick, 1.0)],
    "leapfrog": LEAPFROG,
    "velocity_verlet": LEAPFROG,
    "position_verlet": [(_drift, 0.5), (_kick, 1.0), (_drift, 0.5)],
    "yoshida4": [(f, c * w) for w in (W1, W0, W1) for f, c in LEAPFROG],
}


@pytest.mark.parametrize("name", sorted(ONE_STEP))
def test_one_step_is_the_named_stage_sequence(name):
    H, (q0, p0), _, _ = _pendulum()
    h = 0.3
    q, p = tpjax.integrate(H, (q0, p0), dt=h, steps=1, method=name)
    want = _compose(ONE_STEP[name], np.asarray(q0), np.asarray(p0), h)
    np.testing.assert_allclose(np.asarray(q), want[0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(p), want[1], rtol=0, atol=1e-14)
    others = [o for o in ONE_STEP if ONE_STEP[o] != ONE_STEP[name]]
    for o in others:  # and differs from every other stage sequence at this dt
        alt = _compose(ONE_STEP[o], np.asarray(q0), np.asarray(p0), h)
        assert np.max(np.abs(np.concatenate([alt[0] - want[0], alt[1] - want[1]]))) > 1e-4, (name, o)


def test_stage_table_coefficients_must_sum_to_one():
    from tpjax.integrators import Drift, Kick, Splitting

    with pytest.raises(ValueError, match="Kick coefficients sum to 0.5"):
        Splitting("bad", (Kick(0.5), Drift(1.0)), order=1, symmetric=False)
    with pytest.raises(ValueError, match="Drift coefficients sum to 2"):
        Splitting("bad", (Drift(1.0), Kick(1.0), Drift(1.0)), order=1, symmetric=False)
    ok = Splitting("ok", (Drift(0.25), Kick(1.0), Drift(0.75)), order=1, symmetric=False)
    assert ok.fsal is False and tpjax.METHODS["leapfrog"].fsal is True


def test_triple_jump_builds_yoshidas_stages():
    """Build the composition at test time (the module-level YOSHIDA4 is built once, at import)."""
    from tpjax.integrators import Composition, Drift, Kick
    from tpjax.integrators.splitting import LEAPFROG as LF

    y = Composition(LF, (W1, W0, W1), name="y4", order=4).splitting()
    want = [Kick(W1 / 2), Drift(W1), Kick((W1 + W0) / 2), Drift(W0), Kick((W0 + W1) / 2), Drift(W1), Kick(W1 / 2)]
    assert [type(s) for s in y.stages] == [type(s) for s in want]
    np.testing.assert_allclose([s.c for s in y.stages], [s.c for s in want], rtol=1e-15)
    assert (y.name, y.order, y.symmetric) == ("y4", 4, True)
    assert y.stages == tpjax.METHODS["yoshida4"].stages
