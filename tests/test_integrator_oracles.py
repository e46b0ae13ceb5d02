"""Oracles written against the survivors of the integrators/ mutation sample (tests/MUTATION.md): error
messages that name the argument, the names and labels other code reads, and Tao's order from its gammas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.integrators import Drift, Kick

jax.config.update("jax_enable_x64", True)


def test_gauss_step_refuses_an_integer_state_naming_z():
    from tpjax.integrators.gauss import gauss_step

    with pytest.raises(ValueError, match="`z` must hold floating-point arrays; got dtype int"):
        gauss_step(lambda z: z, (jnp.arange(3), jnp.arange(3)), 0.1, 2)


def test_rigid_body_hamiltonian_of_the_wrong_shape_names_h():
    from tpjax.integrators.rigid_body import inertia_from_hamiltonian

    with pytest.raises(ValueError, match=r"`H` must map L of shape \(3,\) to a scalar; it returns shape \(3,\)"):
        inertia_from_hamiltonian(lambda L: L**2)


def test_a_splitting_without_stages_says_what_to_give():
    with pytest.raises(TypeError, match=r"Splitting needs stages, e\.g\. \(Kick\(0\.5\), Drift\(1\.0\)"):
        tpjax.Splitting()


def test_a_custom_splitting_is_named_custom_splitting_unless_named():
    stages = (Kick(0.5), Drift(1.0), Kick(0.5))
    assert tpjax.Splitting(stages=stages).name == "custom_splitting"
    assert tpjax.Splitting("my_leapfrog", stages=stages).name == "my_leapfrog"


def test_tao_flow_is_listed_as_the_poisson_flow_stage():
    H = lambda q, p: 0.5 * (q**2 + p**2) + 0.1 * q**2 * p**2
    text = str(tpjax.compile(H, (jnp.float64(1.0), jnp.float64(0.0)), method="tao").step)
    assert "; Phase 3: poisson | flow\n" in text


def test_tao_order_is_four_only_for_a_palindromic_composition():
    """gammas summing to 1 with sum(g^3) = 0 but not a palindrome: no order-4 claim (the odd-order terms
    of a non-symmetric composition do not cancel). The triple jump is the palindromic order-4 case."""
    from tpjax.integrators.tao import Tao

    x, c = 1.3, 1.0 - 1.3  # y + z = c; x^3 + y^3 + (c - y)^3 = 3c y^2 - 3c^2 y + x^3 + c^3 = 0
    y = float(min(np.roots([3 * c, -3 * c**2, x**3 + c**3]).real))
    gammas = (x, y, c - y)
    assert abs(sum(g**3 for g in gammas)) < 1e-12 and abs(sum(gammas) - 1.0) < 1e-12
    assert abs(gammas[0] - gammas[2]) > 0.05  # far from a palindrome
    assert Tao(gammas=gammas).order == 2
    w1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
    assert Tao(gammas=(w1, 1.0 - 2.0 * w1, w1)).order == 4


def test_merge_drops_cancelling_kicks_anywhere_and_keeps_a_sum_of_one():
    """Two kicks that cancel vanish and the drifts around them merge, also past the second stage; a merged
    coefficient of exactly 1 is an ordinary stage."""
    from tpjax.integrators.composition import merge

    stages = (Kick(0.25), Drift(0.5), Kick(0.75), Kick(-0.75), Drift(0.5), Kick(0.25))
    assert merge(stages) == (Kick(0.25), Drift(1.0), Kick(0.25))
    assert merge((Drift(0.5), Kick(0.5), Kick(0.5), Drift(0.5))) == (Drift(0.5), Kick(1.0), Drift(0.5))


def test_implicit_midpoint_keeps_float32_arithmetic_and_an_integer_count_with_x64_on():
    """A float32 state is solved in float32 (dt, the field and tol cast to it, also when given as float64
    arrays) even with x64 enabled, and the iteration count is an int32, for both solvers."""
    from tpjax.integrators.implicit import implicit_midpoint_step

    f = lambda z: (z[1], -jnp.sin(z[0]))
    z = (jnp.float32(1.0), jnp.float32(0.5))
    for solver in ("newton", "fixed_point"):
        for tol in (None, np.float64(1e-6)):
            step = lambda z, tol=tol, solver=solver: implicit_midpoint_step(
                f, z, np.float64(0.1), tol=tol, solver=solver
            )
            text = str(jax.make_jaxpr(step)(z))  # the loops' and custom_root's jaxprs included
            assert "f64" not in text, (solver, tol)
            z1, info = step(z)
            assert info.iterations.dtype == jnp.int32 and z1[0].dtype == jnp.float32


def test_implicit_midpoint_default_tolerance_scales_with_the_state():
    """The default tol is relative (10 eps times the state's size): a linear field at |z| ~ 1e4 converges in
    a couple of Newton iterations in float32, where an absolute or inverse-scaled tolerance never would."""
    from tpjax.integrators.implicit import implicit_midpoint_step

    f = lambda z: (z[1], -z[0])
    for scale in (1.0, 1e4):
        z1, info = implicit_midpoint_step(f, (jnp.float32(scale), jnp.float32(0.3 * scale)), 0.1)
        assert bool(info.converged) and int(info.iterations) <= 3, (scale, info)
