"""Structures through the public API: so3 (rigid body), se3 (heavy top), a generic J(z)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.ir import Op, to_text
from tpjax.primitives.poisson_j import hat

jax.config.update("jax_enable_x64", True)

I = jnp.array([1.0, 2.0, 3.0])
L0 = jnp.array([1.0, 0.1, 0.5])


def rigid(L):
    return 0.5 * jnp.sum(L**2 / I)


@pytest.mark.parametrize("method", ["rigid_body", "rigid_body4", "implicit_midpoint"])
def test_rigid_body_casimir_and_energy(method):
    sol = tpjax.trajectory(rigid, L0, dt=0.01, steps=20_000, save_every=100, structure="so3", method=method)
    assert float(sol.casimir_error.max()) < 1e-13
    err = np.asarray(sol.energy_error)
    tenth = len(err) // 10
    assert err[-tenth:].max() <= 1.1 * err[1:tenth].max() + 1e-14  # bounded, no drift


def test_so3_listing_has_the_lie_flow():
    comp = tpjax.compile(rigid, L0, structure="so3")
    assert "type=LIE" in to_text(comp.source)  # the matrix form before the passes
    text = to_text(comp.step)
    assert "LIE_CROSS" in text and "POISSON_J" not in text  # ... rewritten into the cross product


def test_structure_listings_type_and_explain_the_flow():
    """POISSON_J is typed like the state it moves (float32 under x64 too), and its comment says the flow."""
    f32 = jnp.float32
    lines = lambda comp: [ln for ln in to_text(comp.source).splitlines() if "POISSON_J" in ln]  # noqa: E731
    so3 = lines(tpjax.compile(rigid, L0.astype(f32), structure="so3"))
    assert so3 and all(ln.split(":")[1].startswith(" f32[3]") for ln in so3), so3
    canon = lines(tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2 + q**2), (jnp.ones(2, f32),) * 2))
    assert any("type=NEGATE" in ln and ln.endswith("; pdot = -dH/dq") for ln in canon), canon
    assert any("type=PASS" in ln and ln.endswith("; qdot = +dH/dp") for ln in canon), canon
    assert all(": f32[2]" in ln for ln in canon), canon
    pv = tpjax.PointVortices([1.0, 2.0])
    vort = lines(tpjax.compile(lambda r: -jnp.log(jnp.sum((r[0] - r[1]) ** 2)), jnp.ones((2, 2), f32), structure=pv))
    assert len(vort) == 1 and ": f32[2,2]" in vort[0], vort
    assert vort[0].endswith("; Gamma_i r_i' = [[0, 1], [-1, 0]] dH/dr_i"), vort


def test_structure_state_errors_name_the_parts_and_the_fix():
    H = lambda L, G: 0.5 * jnp.sum(L**2) + G[2]  # noqa: E731
    run = lambda state, structure="se3", H=H: tpjax.integrate(H, state, dt=0.1, steps=1, structure=structure)  # noqa: E731
    with pytest.raises(TypeError, match=r"state must be a \(L, Gamma\) pair for structure='se3', got ArrayImpl; "
                                        r"the heavy top's state is \(L, Gamma\), each \(3,\)$"):  # fmt: skip
        run(jnp.ones(3))
    with pytest.raises(ValueError, match=r"^state: L and Gamma must have the same shape, got \(3,\) and \(2,\)$"):
        run((jnp.ones(3), jnp.ones(2)))
    with pytest.raises(ValueError, match=r"must both be \(3,\) for structure='se3', got \(2, 3\); vmap for ensembles$"):
        run((jnp.ones((2, 3)), jnp.ones((2, 3))))
    with pytest.raises(TypeError, match=r"^state z must be an array or a number, got str$"):
        run("z", structure=hat, H=rigid)
    canonical = lambda q, p: jnp.sum(p**2 + q**2)  # noqa: E731
    with pytest.raises(TypeError, match=r"^state must be a \(q, p\) pair for structure='canonical', got ArrayImpl; "
                                        r"pass tpjax.integrate\(H, \(q, p\), ...\)"):  # fmt: skip
        run(jnp.ones(3), structure="canonical", H=canonical)
    with pytest.raises(ValueError, match=r"^state: q and p must have the same shape, got \(3,\) and \(2,\)$"):
        run((jnp.ones(3), jnp.ones(2)), structure="canonical", H=canonical)
    with pytest.raises(TypeError, match=r"^state p must be floating point, got int32"):
        run((jnp.ones(3), jnp.ones(3, jnp.int32)), structure="canonical", H=canonical)


def test_heavy_top_keeps_its_casimirs():
    H = lambda L, G: 0.5 * jnp.sum(L**2 / I) + G[2]
    sol = tpjax.trajectory(H, (L0, jnp.array([0.0, 0.6, 0.8])), dt=0.01, steps=5000, save_every=50,
                           structure="se3")  # fmt: skip
    gg, lg = sol.casimir_error
    assert float(gg.max()) < 1e-12 and float(lg.max()) < 1e-11


def test_generic_poisson_structure_equals_so3():
    out = tpjax.integrate(rigid, L0, dt=0.01, steps=200, structure=hat)
    ref = tpjax.integrate(rigid, L0, dt=0.01, steps=200, structure="so3", method="implicit_midpoint")
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-14)
    comp = tpjax.compile(rigid, L0, structure=hat)
    assert any(i.op is Op.POISSON_J and i.attr("type") == "MATRIX" for i in comp.step.instrs)


def test_generic_poisson_structure_rejects_non_skew():
    with pytest.raises(ValueError, match="structure J"):
        tpjax.integrate(rigid, L0, dt=0.01, steps=2, structure=lambda z: jnp.eye(3))


def test_non_separable_canonical_h_with_implicit_midpoint_is_symplectic():
    H = lambda q, p: 0.5 * jnp.sum(p**2) * (1 + 0.3 * jnp.sum(q**2)) + 0.5 * jnp.sum(q**2)
    n = 2

    def step(z):
        q, p = tpjax.integrate(H, (z[:n], z[n:]), dt=0.1, steps=2, method="implicit_midpoint")
        return jnp.concatenate([q, p])

    M = jax.jacfwd(step)(jnp.array([0.3, -0.2, 0.1, 0.4]))
    Om = jnp.block([[jnp.zeros((n, n)), jnp.eye(n)], [-jnp.eye(n), jnp.zeros((n, n))]])
    assert float(jnp.max(jnp.abs(M.T @ Om @ M - Om))) < 1e-10


def test_rigid_body_splitting_refuses_other_hamiltonians():
    with pytest.raises(ValueError, match="implicit_midpoint"):
        tpjax.integrate(lambda L: rigid(L) + 0.1 * L[0] ** 4, L0, dt=0.01, steps=2, structure="so3",
                        method="rigid_body")  # fmt: skip


def test_rigid_body_casimir_over_1e6_steps_with_compensation():
    """Issue 3's |L|^2 <= 1e-13 over 10^6 steps: plain float64 rotations random-walk to ~2e-13
    (eps * sqrt(5e6 rotations)); the compensated (TwoSum) rotations keep it at ~4e-16."""
    pol = tpjax.Precision(grad="float64", step="float64", compensated=True)
    sol = tpjax.trajectory(rigid, L0, dt=1e-3, steps=1_000_000, save_every=1000, structure="so3",
                           method="rigid_body", precision=pol)  # fmt: skip
    assert float(sol.casimir_error.max()) <= 1e-13
    err = np.asarray(sol.energy_error)
    assert err[-100:].max() <= 1.1 * err[1:100].max() + 1e-15  # bounded energy error
    plain = tpjax.integrate(rigid, L0, dt=1e-3, steps=1000, structure="so3", method="rigid_body")
    comp = tpjax.integrate(rigid, L0, dt=1e-3, steps=1000, structure="so3", method="rigid_body", precision=pol)
    np.testing.assert_allclose(comp, plain, rtol=1e-12)  # same method, only the rounding differs


@pytest.mark.parametrize("method", ["rigid_body", "rigid_body4"])
def test_compensated_float32_rotations_follow_the_float64_run(method):
    """The TwoSum-compensated rotations (integrators/rigid_body_compensated.py, both orders) in float32 stay
    near the float64 run of the same method, where plain float32 rotations random-walk away; the Casimir
    stays at float32 roundoff. Any error in the compensation terms loses that margin. Order 4's margin is
    smaller: its sub-steps w * dt are rounded to float32, a coherent error per step that no compensation of
    the additions removes (5.6e-8 against 9.2e-6 at order 2, 1.8e-6 against 8.7e-6 at order 4)."""
    kw = dict(dt=1e-3, steps=20_000, structure="so3", method=method)
    ref = np.asarray(tpjax.integrate(rigid, L0, **kw))
    L32 = L0.astype(jnp.float32)
    plain = np.asarray(tpjax.integrate(rigid, L32, **kw), np.float64)
    comp = tpjax.integrate(rigid, L32, precision=tpjax.Precision(compensated=True), **kw)
    assert comp.dtype == jnp.float32
    err_plain, err_comp = np.abs(plain - ref).max(), np.abs(np.asarray(comp, np.float64) - ref).max()
    margin = {"rigid_body": 50, "rigid_body4": 3}[method]  # measured 165x and 4.8x
    assert err_comp * margin < err_plain and err_comp < 5e-6, (err_comp, err_plain)
    casimir = abs(float(np.sum(np.asarray(comp, np.float64) ** 2)) - float(jnp.sum(L0**2)))
    assert casimir < 1e-6


def test_implicit_midpoint_failure_raises_a_clear_error():
    from tpjax.integrators import ImplicitMidpoint
    from tpjax.integrators.implicit import ConvergenceError

    H = lambda L: rigid(L) + 0.5 * L[0] ** 4
    with pytest.raises(ConvergenceError, match="dt=.*smaller dt"):
        tpjax.integrate(H, 10 * L0, dt=0.5, steps=3, structure="so3",
                        method=ImplicitMidpoint(solver="fixed_point", max_iter=2))  # fmt: skip
    # under jit the failure cannot raise: the state becomes NaN instead of silently wrong
    f = jax.jit(lambda L: tpjax.integrate(H, L, dt=0.5, steps=3, structure="so3",
                                          method=ImplicitMidpoint(solver="fixed_point", max_iter=2)))  # fmt: skip
    assert bool(jnp.all(jnp.isnan(f(10 * L0))))
