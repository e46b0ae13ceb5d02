"""The integrators' documented contracts at their edges: what each constructor accepts and refuses (naming
the argument), the attributes it reports, the tolerances and solvers it honours, and its error messages.

Written against survivors of the mutation run over ``integrators/`` (tests/MUTATION.md): each test checks a
property a user relies on (a method told to use fixed-point iteration uses it; a tolerance of 0 with an exact
solution converges in no iterations; a yoshida4 table reports order 4), not the code's text.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.integrators import METHODS, Composition, GaussLegendre, ImplicitMidpoint, Splitting, Tao
from tpjax.integrators import composition as comp_mod
from tpjax.integrators.base import Drift, Kick
from tpjax.integrators.gauss import gauss_step
from tpjax.integrators.implicit import ConvergenceError, implicit_midpoint_step
from tpjax.integrators.lie import RIGID_BODY, RIGID_BODY4
from tpjax.integrators.rigid_body import inertia_from_hamiltonian, rigid_body_energy
from tpjax.integrators.splitting import LEAPFROG
from tpjax.integrators.tao import TRIPLE_JUMP4

jax.config.update("jax_enable_x64", True)

STIFF = lambda q, p: 0.5 * p**2 + 8.0 * q**2  # omega = 4: with dt = 1, fixed-point iteration diverges
RIGID = lambda L: 0.5 * (L[0] ** 2 / 1.0 + L[1] ** 2 / 2.0 + L[2] ** 2 / 3.0)
L0 = jnp.array([0.3, 1.0, -0.4])


# ---------------------------------------------------------------- which structures a method applies to
def test_a_canonical_method_applies_to_any_canonical_structure_and_only_its_own_others():
    @dataclasses.dataclass(frozen=True)
    class Scaled(tpjax.Canonical):  # a user's canonical structure under its own name
        name: str = "scaled_canonical"

    assert LEAPFROG.applies_to(Scaled()) and LEAPFROG.applies_to(tpjax.Canonical())
    assert not LEAPFROG.applies_to(tpjax.SO3())
    assert not RIGID_BODY.applies_to(tpjax.Canonical())  # structures=("so3",): not canonical ones


# ---------------------------------------------------------------- Splitting and Composition tables
def test_a_splitting_reports_its_defaults_and_what_it_was_given():
    table = (Kick(0.5), Drift(1.0), Kick(0.5))
    s = Splitting(stages=table)
    assert (s.name, s.explicit, s.order, s.symmetric) == ("custom_splitting", True, 1, True)
    t = Splitting("mine", table, order=2, explicit=False)
    assert (t.name, t.explicit, t.order) == ("mine", False, 2)


def test_splitting_tables_are_refused_naming_the_argument():
    with pytest.raises(TypeError, match=r"^Splitting needs stages, e\.g\. \(Kick\(0\.5\), Drift\(1\.0\), Kick"):
        Splitting()
    with pytest.raises(ValueError, match="stages must be a non-empty sequence of Kick/Drift stages"):
        Splitting(stages=())
    with pytest.raises(ValueError, match="stages must be a non-empty sequence of Kick/Drift stages"):
        Splitting(stages=(Kick(0.5), "drift", Kick(0.5)))
    with pytest.raises(ValueError, match=r"not a palindrome, so step\(-dt\) does not undo step\(dt\); pass "):
        Splitting(stages=(Kick(1.0), Drift(1.0)), symmetric=True)
    for order in (True, 2.5, 0):
        with pytest.raises(ValueError, match="order must be a positive int"):
            Splitting(stages=(Kick(0.5), Drift(1.0), Kick(0.5)), order=order)
    with pytest.raises(ValueError, match=r"^a must hold finite real numbers"):
        Splitting(a=("x",), b=(1.0,))
    with pytest.raises(ValueError, match=r"^b must hold finite real numbers"):
        Splitting(a=(1.0,), b=(float("nan"),))


def test_is_palindrome_with_zero_tolerance_accepts_an_exact_palindrome():
    table = (Kick(0.5), Drift(1.0), Kick(0.5))
    assert comp_mod.is_palindrome(table, tol=0.0)
    assert not comp_mod.is_palindrome((Kick(0.5), Drift(1.0), Kick(0.5 + 1e-9)), tol=0.0)


def test_a_composition_normalises_and_checks_its_gammas():
    c = Composition(LEAPFROG, [0.25, 0.5, 0.25])
    assert c.gammas == (0.25, 0.5, 0.25) and isinstance(c.gammas, tuple)
    with pytest.raises(ValueError, match=r"^gammas must hold finite real numbers"):
        Composition(LEAPFROG, (0.5, "x", 0.5))
    with pytest.raises(ValueError, match=r"^Composition: gammas must not be empty; e\.g\. gammas=\(1\.0,\)"):
        Composition(LEAPFROG, ())
    with pytest.raises(ValueError, match=r"a palindrome \(g_i = g_\{s\+1-i\}\) for a symmetric composition; e\.g\."):
        Composition(LEAPFROG, (0.7, 0.3))
    with pytest.raises(ValueError, match="raise the order only of symmetric methods: compose e.g. leapfrog"):
        Composition(METHODS["symplectic_euler"], (1.0,))


@pytest.mark.parametrize(("name", "order"), [("yoshida4", 4), ("yoshida6", 6), ("yoshida8", 8), ("suzuki4", 4),
                                           ("kahan_li8", 8), ("sofroniou_spaletta10", 10)])  # fmt: skip
def test_the_named_compositions_report_their_order(name, order):
    assert METHODS[name].order == order


# ---------------------------------------------------------------- Tao
def test_tao_accepts_any_positive_omega_and_infers_its_order_and_symmetry():
    assert Tao(omega=0.5).omega == 0.5
    assert Tao(gammas=TRIPLE_JUMP4).order == 4
    # symmetric within an absolute 1e-14, also where the entries are tiny (a relative test would refuse)
    assert Tao(gammas=(1e-15, 1.0 - 3e-15, 2e-15)).symmetric
    # a composition with sum g^3 = 0 that is not a palindrome has order 2, not 4
    delta = 0.1
    roots = np.roots([-6.0, 12.0, 6 * delta**2 - 6.0, 1.0])
    w = float(next(r.real for r in roots if abs(r.imag) < 1e-12))
    g = (w + delta, 1.0 - 2 * w, w - delta)
    assert abs(sum(x**3 for x in g)) < 1e-12 and abs(sum(g) - 1.0) < 1e-12
    assert Tao(gammas=g).order == 2 and not Tao(gammas=g).symmetric
    # the triple jump with a tiny pair inserted (a palindrome within 1e-14): still order 4
    w1, w0 = TRIPLE_JUMP4[0], TRIPLE_JUMP4[1]
    assert Tao(gammas=(w1, 1e-15, w0 - 3e-15, 2e-15, w1)).order == 4


# ---------------------------------------------------------------- implicit solvers: tolerance, solver, counts
def _rest(z):
    """The flow of H = p^2 / 2 at p = 0: zero, so the exact step is the start and its residual exactly 0."""
    return jax.tree.map(jnp.zeros_like, z)


@pytest.mark.parametrize("stages", [None, 2])
def test_a_zero_tolerance_with_an_exact_start_converges_in_no_iterations(stages):
    z = (jnp.asarray([0.3, -0.2]), jnp.zeros(2))
    if stages is None:
        z1, info = implicit_midpoint_step(_rest, z, 0.1, tol=0.0)
    else:
        z1, info = gauss_step(_rest, z, 0.1, stages, tol=0.0)
    assert bool(info.converged) and int(info.iterations) == 0
    assert jnp.issubdtype(info.iterations.dtype, jnp.integer)
    np.testing.assert_array_equal(np.asarray(z1[0]), np.asarray(z[0]))


def _harmonic_flow(scale):
    return lambda z: (z[1], -z[0])


def test_gauss_honours_a_given_tolerance_and_the_default_is_relative_and_per_dtype():
    flow = _harmonic_flow(1.0)
    for dtype, size in ((jnp.float64, 1e4), (jnp.float32, 1.0)):
        z = (jnp.asarray([size], dtype), jnp.asarray([0.5 * size], dtype))
        z1, info = gauss_step(flow, z, 0.1, 2)  # default tolerance: 10 eps of the state's dtype times its size
        assert bool(info.converged), (dtype, size, info)
        assert z1[0].dtype == dtype
    z = (jnp.asarray([1.0]), jnp.asarray([0.5]))
    _, info = gauss_step(flow, z, 0.1, 2, tol=1e-9)
    assert bool(info.converged) and float(info.residual) <= 1e-9
    with pytest.raises(ValueError, match=r"^`solver` must be one of \('newton', 'fixed_point'\); got 'bogus'"):
        gauss_step(flow, z, 0.1, 2, solver="bogus")


@pytest.mark.parametrize("tol", [None, 1e-6])
def test_the_gauss_step_keeps_float32_arithmetic_with_x64_on(tol):
    """dt a Python float and tol a float (float64 under x64): every operation of a float32 state's step is
    float32 (as on the GPU kernels), none promoted to float64."""
    z = (jnp.asarray([1.0], jnp.float32), jnp.asarray([0.5], jnp.float32))
    z1, info = gauss_step(_harmonic_flow(1.0), z, 0.1, 2, tol=tol)
    assert z1[0].dtype == jnp.float32 and bool(info.converged)
    jaxpr = str(jax.make_jaxpr(lambda z: gauss_step(_harmonic_flow(1.0), z, 0.1, 2, tol=tol))(z))
    assert "f64" not in jaxpr, jaxpr


def test_implicit_midpoint_refuses_an_integer_state():
    with pytest.raises(ValueError, match="`z` must hold floating-point arrays"):
        implicit_midpoint_step(_rest, (jnp.asarray([1, 2]), jnp.asarray([0, 0])), 0.1)


@pytest.mark.parametrize("method", [ImplicitMidpoint, GaussLegendre])
def test_the_methods_use_the_solver_they_are_given(method):
    """dt = 1 on omega = 4: Newton solves the linear stage equations, fixed-point iteration diverges."""
    z0 = (jnp.asarray(1.0), jnp.asarray(0.0))
    out = tpjax.integrate(STIFF, z0, dt=1.0, steps=2, method=method(solver="newton"))
    assert all(bool(jnp.isfinite(x)) for x in out)
    with pytest.raises(ConvergenceError):
        tpjax.integrate(STIFF, z0, dt=1.0, steps=2, method=method(solver="fixed_point", max_iter=30))


@pytest.mark.parametrize("method", [ImplicitMidpoint, GaussLegendre])
def test_the_methods_use_the_iteration_limit_and_tolerance_they_are_given(method):
    pendulum = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    z0 = (jnp.asarray(1.0), jnp.asarray(0.3))
    assert bool(jnp.isfinite(tpjax.integrate(pendulum, z0, dt=0.5, steps=2, method=method())[0]))
    with pytest.raises(ConvergenceError, match="after 1 iterations"):  # Newton needs more than one
        tpjax.integrate(pendulum, z0, dt=0.5, steps=2, method=method(max_iter=1))
    # a given tolerance is used, not the default: a loose one accepts the first iterate
    loose = tpjax.integrate(pendulum, z0, dt=0.5, steps=2, method=method(tol=0.5))[0]
    tight = tpjax.integrate(pendulum, z0, dt=0.5, steps=2, method=method())[0]
    assert abs(float(loose - tight)) > 1e-6


def test_convergence_errors_say_what_is_known():
    text = str(ConvergenceError(0.1))
    assert "residual unknown after max_iter iterations (tolerance default)" in text
    assert "(tolerance 1e-09)" in str(ConvergenceError(0.1, 3, 2e-5, tol=1e-9))


def test_gauss_names_and_refusals():
    assert GaussLegendre(stages=2).name == "gauss4" and GaussLegendre(stages=3).name == "gauss6"
    with pytest.raises(ValueError, match=r"^solver must be one of \('newton', 'fixed_point'\), got 'x'"):
        GaussLegendre(solver="x")


# ---------------------------------------------------------------- the free rigid body
def test_the_rigid_body_refuses_a_mixed_precision_gradient():
    pol = tpjax.Precision(grad="float64", step="float32")
    with pytest.raises(ValueError, match=r"\(compensated=True is supported\) or method='implicit_midpoint'"):
        tpjax.integrate(RIGID, L0.astype(jnp.float32), dt=0.01, steps=2, structure="so3", method="rigid_body",
                        precision=pol)  # fmt: skip


def test_non_positive_moments_are_refused_inside_jit_too():
    bad = lambda L: 0.5 * (L[0] ** 2 - L[1] ** 2 + L[2] ** 2)
    run = jax.jit(lambda L: tpjax.integrate(bad, L, dt=0.01, steps=2, structure="so3", method="rigid_body"))
    with pytest.raises(ValueError, match="positive moments"):
        run(L0)


def test_rigid_body_form_errors_name_the_terms_and_the_shape():
    with pytest.raises(ValueError, match=r"term\(s\) \['L0\*L1'\] besides the squares"):
        inertia_from_hamiltonian(lambda L: RIGID(L) + L[0] * L[1])
    with pytest.raises(ValueError, match=r"must map L of shape \(3,\) to a scalar; it returns shape \(3,\)"):
        inertia_from_hamiltonian(lambda L: L**2)


def test_rigid_body_helpers_keep_dtype_and_batch_axes():
    inertia = inertia_from_hamiltonian(RIGID, dtype=jnp.float32)
    assert inertia.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(inertia), [1.0, 2.0, 3.0], rtol=1e-6)
    Ls = jnp.stack([L0, 2 * L0])
    E = rigid_body_energy(Ls, jnp.asarray([1.0, 2.0, 3.0]))
    assert E.shape == (2,)
    np.testing.assert_allclose(np.asarray(E), [float(RIGID(L0)), 4 * float(RIGID(L0))], rtol=1e-14)


@pytest.mark.parametrize("backend", ["auto", "xla"])  # the fused rigid-body primitive, the method's Stepper
def test_rigid_body4_is_order_four_and_rigid_body_order_two(backend):
    """Errors against an independent reference (Gauss-Legendre order 8 at dt = 1e-3) at dt and dt/2: ratios
    2^4 and 2^2."""
    ref = tpjax.integrate(RIGID, L0, dt=1e-3, steps=2000, structure="so3", method=GaussLegendre(stages=4))
    for method, order in ((RIGID_BODY4, 4), (RIGID_BODY, 2)):
        errs = []
        for dt in (0.1, 0.05):
            L = tpjax.integrate(RIGID, L0, dt=dt, steps=int(round(2.0 / dt)), structure="so3", method=method,
                                backend=backend)  # fmt: skip
            errs.append(float(jnp.max(jnp.abs(L - ref))))
        assert abs(np.log2(errs[0] / errs[1]) - order) < 0.3, (method.name, errs)


@pytest.mark.parametrize("method", ["rigid_body", "rigid_body4"])
def test_the_compensated_rigid_body_stepper_equals_the_fused_path(method):
    """backend="xla" runs the method's own Stepper on (L, e): it must keep the method's order, report L alone
    (final state and saved states) and agree with the default path to float32 rounding."""
    kw = dict(dt=0.1, structure="so3", method=method, precision=tpjax.Precision(compensated=True))
    L32 = L0.astype(jnp.float32)
    a, b = tpjax.integrate(RIGID, L32, steps=30, **kw), tpjax.integrate(RIGID, L32, steps=30, backend="xla", **kw)
    assert a.shape == b.shape == (3,) and b.dtype == jnp.float32
    same = tpjax.integrate(RIGID, L0, dt=0.1, steps=30, structure="so3", method=method)
    other = tpjax.integrate(RIGID, L0, dt=0.1, steps=30, structure="so3",
                            method={"rigid_body": "rigid_body4", "rigid_body4": "rigid_body"}[method])  # fmt: skip
    assert float(jnp.max(jnp.abs(same - other))) > 2e-5  # the two orders: 7.5e-5 apart, 37x the tolerance
    np.testing.assert_allclose(np.asarray(b, np.float64), np.asarray(same), atol=2e-6)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
    sa = tpjax.trajectory(RIGID, L32, steps=30, save_every=10, **kw)
    sb = tpjax.trajectory(RIGID, L32, steps=30, save_every=10, backend="xla", **kw)
    assert np.shape(sb.states) == np.shape(sa.states) == (4, 3), (np.shape(sa.states), np.shape(sb.states))  # t = 0 too
    np.testing.assert_allclose(np.asarray(sb.states), np.asarray(sa.states), atol=2e-6)


@pytest.mark.parametrize("backend", ["auto", "xla"])
def test_traced_moments_under_jit_equal_the_eager_run(backend):
    H = lambda L, inertia: 0.5 * jnp.sum(L**2 / inertia)
    run = lambda inertia: tpjax.integrate(lambda L: H(L, inertia), L0, dt=0.05, steps=40, structure="so3",
                                          method="rigid_body4", backend=backend)  # fmt: skip
    inertia = jnp.asarray([1.0, 2.0, 3.0])
    np.testing.assert_allclose(np.asarray(jax.jit(run)(inertia)), np.asarray(run(inertia)), rtol=1e-12)
    want = tpjax.integrate(RIGID, L0, dt=0.05, steps=40, structure="so3", method="rigid_body4")
    np.testing.assert_allclose(np.asarray(jax.jit(run)(inertia)), np.asarray(want), rtol=1e-12)


# ---------------------------------------------------------------- the explicit schedule
def test_a_constant_force_runs_exactly():
    """H = p^2/2 + 3 q: dH/dq is a constant (no register holds it); leapfrog is exact for it."""
    q, p = tpjax.integrate(lambda q, p: 0.5 * p**2 + 3.0 * q, (jnp.asarray(0.2), jnp.asarray(1.0)), dt=0.1, steps=10)
    np.testing.assert_allclose([float(q), float(p)], [0.2 + 1.0 - 1.5, 1.0 - 3.0], rtol=1e-13)


def test_a_free_particle_runs_exactly():
    """H = p^2/2: dH/dq is identically zero (no register, a literal)."""
    q, p = tpjax.integrate(lambda q, p: 0.5 * p**2, (jnp.asarray(0.2), jnp.asarray(1.5)), dt=0.1, steps=10)
    np.testing.assert_allclose([float(q), float(p)], [0.2 + 1.5, 1.5], rtol=1e-14)


def test_the_poisson_j_of_each_stage_is_typed_like_its_gradient():
    H = lambda q, p: 0.5 * jnp.sum(p**2) + jnp.sum(jnp.cos(q))
    c = tpjax.compile(H, (jnp.zeros(3, jnp.float32), jnp.zeros(3, jnp.float32)))
    js = [i for i in c.source.instrs if i.op.name == "POISSON_J"]  # the traced program, before the passes
    assert len(js) == 3 and all(i.dtype == "f32" and tuple(i.shape) == (3,) for i in js), js
    listing = str(c.source)
    assert listing.count("; pdot = -dH/dq") == 2 and listing.count("; qdot = +dH/dp") == 1, listing


def test_a_non_separable_h_with_an_explicit_splitting_says_why_and_what_to_use():
    H = lambda q, p: 0.5 * p**2 * (1 + q**2)
    with pytest.raises(ValueError) as e:
        tpjax.integrate(H, (jnp.asarray(0.1), jnp.asarray(0.2)), dt=0.1, steps=1, method="leapfrog")
    msg = str(e.value)
    for part in ("but dH/dq depends on p (found in the jaxpr of H). An explicit method would silently lose "
                 "symplecticity; use method='implicit_midpoint' (implicit) or method='tao' (explicit, in a "
                 "doubled phase space) for non-separable H",):  # fmt: skip
        assert part in msg, msg
