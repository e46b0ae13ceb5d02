"""The splitting library through tpjax: measured order, symplecticity, reversibility, bounded energy, FSAL;
custom ``tpjax.Splitting(a=, b=)`` and ``tpjax.Composition(base, gammas)``. Float64 throughout."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402
from tpjax.integrators import METHODS, Drift, Kick  # noqa: E402
from tpjax.integrators import tables as T  # noqa: E402


def pendulum(q, p):
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))


def harmonic(q, p):
    return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2)


def henon_heiles(q, p):
    x, y = q[0], q[1]
    return 0.5 * jnp.sum(p**2) + 0.5 * (x**2 + y**2) + x**2 * y - y**3 / 3.0


S0 = (jnp.array([1.2]), jnp.array([0.3]))
SPLITTINGS = sorted(k for k, v in METHODS.items() if isinstance(v, tpjax.Splitting) and k != "velocity_verlet")
SYMMETRIC = [k for k in SPLITTINGS if METHODS[k].symmetric]

#: steps (n, 2n) over t = 4 of the pendulum: errors between ~1e-4 and ~1e-12, in the asymptotic range.
STEPS = {"symplectic_euler": 80, "leapfrog": 40, "position_verlet": 40, "omelyan2": 40, "yoshida4": 40,
         "suzuki4": 20, "mclachlan4": 20, "blanes_moan4": 80, "calvo_sanz4": 20, "yoshida6": 20, "kahan_li6": 20,
         "blanes_moan6": 10, "yoshida8": 20, "kahan_li8": 10}  # fmt: skip


def test_every_splitting_has_a_measured_order():
    assert set(STEPS) | {"sofroniou_spaletta10"} == set(SPLITTINGS)


@pytest.fixture(scope="module")
def pendulum_reference():
    """t = 4 by the 10th-order method with 800 steps (error ~1e-15, far below every measured error)."""
    return tpjax.integrate(pendulum, S0, dt=4.0 / 800, steps=800, method="sofroniou_spaletta10")


def _error(H, s0, t, n, method, ref):
    q, p = tpjax.integrate(H, s0, dt=t / n, steps=n, method=method)
    return float(jnp.sqrt(jnp.sum((q - ref[0]) ** 2 + (p - ref[1]) ** 2)))


@pytest.mark.parametrize("name", sorted(STEPS))
def test_measured_order_on_the_pendulum(name, pendulum_reference):
    n = STEPS[name]
    e1, e2 = (_error(pendulum, S0, 4.0, k, name, pendulum_reference) for k in (n, 2 * n))
    assert 1e-12 < e2 < e1 < 0.05
    assert abs(math.log2(e1 / e2) - METHODS[name].order) <= 0.15, (name, e1, e2)


def test_measured_order_10_on_the_harmonic_oscillator():
    """Order 10 leaves too narrow a window above round-off on the pendulum; the oscillator's flow is exact."""
    s0, t = (jnp.array([1.0]), jnp.array([0.0])), 100.0
    exact = (jnp.cos(t) * s0[0], -jnp.sin(t) * s0[0])
    e1, e2 = (_error(harmonic, s0, t, n, "sofroniou_spaletta10", exact) for n in (125, 200))
    assert 1e-12 < e2 < e1 < 1e-6
    assert abs(math.log(e1 / e2) / math.log(200 / 125) - 10) <= 0.15, (e1, e2)


@pytest.mark.parametrize("name", SPLITTINGS)
def test_one_step_is_symplectic(name):
    z0 = jnp.array([0.3, -0.2, 0.25, 0.4])

    def step(z):
        q, p = tpjax.integrate(henon_heiles, (z[:2], z[2:]), dt=0.3, steps=1, method=name)
        return jnp.concatenate([q, p])

    M = jax.jacfwd(step)(z0)
    omega = jnp.block([[jnp.zeros((2, 2)), jnp.eye(2)], [-jnp.eye(2), jnp.zeros((2, 2))]])
    assert float(jnp.max(jnp.abs(M.T @ omega @ M - omega))) <= 1e-12
    assert float(jnp.max(jnp.abs(M - jnp.eye(4)))) > 1e-3  # a real step, not the identity


@pytest.mark.parametrize("name", SYMMETRIC)
def test_symmetric_methods_are_reversible(name):
    s0 = (jnp.array([0.3, -0.2]), jnp.array([0.25, 0.4]))
    s1 = tpjax.integrate(henon_heiles, s0, dt=0.1, steps=20, method=name)
    back = tpjax.integrate(henon_heiles, s1, dt=-0.1, steps=20, method=name)
    assert float(jnp.max(jnp.abs(s1[0] - s0[0]))) > 1e-2
    for a, b in zip(back, s0, strict=True):
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-13


def test_the_asymmetric_methods_are_not_reversible():
    s0 = (jnp.array([0.3, -0.2]), jnp.array([0.25, 0.4]))
    for name in sorted(set(SPLITTINGS) - set(SYMMETRIC)):
        back = tpjax.integrate(henon_heiles, tpjax.integrate(henon_heiles, s0, dt=0.3, steps=10, method=name),
                               dt=-0.3, steps=10, method=name)  # fmt: skip
        assert float(jnp.max(jnp.abs(back[0] - s0[0]))) > 1e-11, name  # round-off is ~1e-15


@pytest.mark.parametrize("name", SPLITTINGS)
def test_energy_stays_bounded_over_1e5_steps(name):
    sol = tpjax.trajectory(pendulum, S0, dt=0.1, steps=100_000, save_every=1000, method=name)
    err = np.abs(np.asarray(sol.energies - sol.energies[0]))
    first, second = err[:51].max(), err[51:].max()
    assert np.all(np.isfinite(err)) and second < 0.1
    assert second <= 1.5 * first + 1e-13, (first, second)  # no secular drift


@pytest.mark.parametrize("name", SPLITTINGS)
def test_fsal_leaves_one_force_per_kick_after_the_first(name):
    """Count the gradient blocks (sin evaluations of the pendulum force) in the compiled step."""
    m = METHODS[name]
    comp = tpjax.compile(pendulum, S0, method=name)
    instrs = comp.step.instrs
    blocks = {i.stage for i in instrs if i.phase == "backward" and i.op.name != "LOAD"}
    n_sin = sum(i.op.name == "ELEM" and ("func", "sin") in i.attrs for i in instrs)
    kicks = sum(isinstance(s, Kick) for s in m.stages)
    assert len(blocks) == n_sin == m.force_evaluations == kicks - m.fsal
    assert comp.carries_force == m.fsal == (isinstance(m.stages[0], Kick) and isinstance(m.stages[-1], Kick))


# ---- custom tables -------------------------------------------------------------------------------------


def _run(method, steps=50):
    s0 = (jnp.array([0.3, -0.2]), jnp.array([0.25, 0.4]))
    return tpjax.integrate(henon_heiles, s0, dt=0.07, steps=steps, method=method)


def test_custom_table_reproduces_leapfrog_bit_for_bit():
    lf = tpjax.Splitting(a=(0.0, 1.0), b=(0.5, 0.5), order=2)
    assert lf.stages == METHODS["leapfrog"].stages and lf.symmetric and lf.fsal
    for a, b in zip(_run(lf), _run("leapfrog"), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    pv = tpjax.Splitting(a=(0.5, 0.5), b=(1.0,), order=2, name="pv")
    assert pv.stages == METHODS["position_verlet"].stages and not pv.fsal


def test_composition_of_leapfrog_with_the_triple_jump_is_yoshida4():
    w1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
    w0 = 1.0 - 2.0 * w1
    comp = tpjax.Composition(METHODS["leapfrog"], (w1, w0, w1), name="yoshida4", order=4)
    expected = (Kick(w1 / 2), Drift(w1), Kick(w1 / 2 + w0 / 2), Drift(w0), Kick(w0 / 2 + w1 / 2), Drift(w1),
                Kick(w1 / 2))  # fmt: skip
    assert comp.stages() == expected == METHODS["yoshida4"].stages
    split = comp.splitting()
    assert split == METHODS["yoshida4"] and split.symmetric and split.order == 4
    for a, b in zip(_run(split), _run("yoshida4"), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_composition_defaults_to_the_base_order_and_merges_stages():
    comp = tpjax.Composition(METHODS["position_verlet"], T.SUZUKI4)
    s = comp.splitting()
    assert s.order == 2 and len(s.stages) == 11 and isinstance(s.stages[0], Drift)
    assert comp.base is METHODS["position_verlet"] and comp.gammas == T.SUZUKI4


def test_coefficients_round_trip_every_library_table():
    for name in SPLITTINGS:
        m = METHODS[name]
        a, b = m.coefficients
        again = tpjax.Splitting(a=a, b=b, order=m.order, name=name)
        assert again.stages == m.stages and again.symmetric == m.symmetric


def test_legacy_construction_and_replace_still_work():
    s = tpjax.Splitting("kdk", (Kick(0.5), Drift(1.0), Kick(0.5)), 2, True)
    assert s.order == 2 and s.symmetric and dataclasses.replace(s, name="other").stages == s.stages
    assert tpjax.Splitting(a=(1.0,), b=(1.0,)).order == 1  # the order defaults to 1 (consistency only)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(a=(0.0, 1.0), b=(0.5, 0.4)), "b coefficients sum to"),
        (dict(a=(0.5, 0.6), b=(1.0,)), "a coefficients sum to"),
        (dict(a=(0.3, 0.7), b=(1.0,), symmetric=True), "not a palindrome"),
        (dict(a=(1.0, 0.0, 0.0), b=(1.0,)), r"len\(a\)"),
        (dict(a=(1.0,), b=("x",)), "finite real numbers"),
        (dict(a=(1.0,), b=(float("nan"),)), "finite real numbers"),
        (dict(a=(1.0,)), "give both a="),
        (dict(a=(1.0,), b=(1.0,), order=0), "order must be a positive int"),
        (dict(stages=(Kick(0.5), Drift(1.0), Kick(0.4)), name="x", order=2), "Kick coefficients sum"),
        (dict(stages=(Kick(1.0), Drift(1.0)), a=(1.0,), b=(1.0,)), "not both"),
    ],
)
def test_bad_tables_are_refused(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tpjax.Splitting(**kwargs)


def test_bad_compositions_are_refused():
    lf = METHODS["leapfrog"]
    with pytest.raises(ValueError, match="palindrome"):
        tpjax.Composition(lf, (0.2, 0.3, 0.5))
    with pytest.raises(ValueError, match="sum to"):
        tpjax.Composition(lf, (0.5, 0.6, 0.5))
    with pytest.raises(ValueError, match="not symmetric"):
        tpjax.Composition(METHODS["symplectic_euler"], (0.5, 0.5))
    with pytest.raises(TypeError, match="base must be a tpjax.Splitting"):
        tpjax.Composition(METHODS["implicit_midpoint"], (1.0,))
    with pytest.raises(ValueError, match="empty"):
        tpjax.Composition(lf, ())
