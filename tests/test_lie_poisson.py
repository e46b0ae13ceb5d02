"""Lie-Poisson structures (so(3)*, se(3)*), the rigid-body splittings and the implicit midpoint rule.

Physics is the oracle: Casimirs to roundoff, bounded energy error, measured convergence order against an
independent RK4 reference in x64, reversibility, and gradients against central finite differences.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

jax.config.update("jax_enable_x64", True)

from tpjax.integrators.implicit import ConvergenceError, MidpointInfo, implicit_midpoint_step  # noqa: E402
from tpjax.integrators.rigid_body import (  # noqa: E402
    axis_flow,
    axis_rotation,
    inertia_from_hamiltonian,
    rigid_body_energy,
    rigid_body_order4,
    rigid_body_strang,
)
from tpjax.structures.lie_poisson import (  # noqa: E402
    check_skew,
    generic_flow,
    hat,
    heavy_top_casimirs,
    heavy_top_flow,
    so3_casimir,
    so3_flow,
)

EPS = float(jnp.finfo(jnp.float64).eps)
I3 = jnp.array([1.0, 2.0, 3.0])
L0 = jnp.array([1.0, 0.1, 0.5])  # far from the stable equilibria, near the unstable middle axis' orbit
CHI, MG = jnp.array([0.0, 0.0, 1.0]), 1.0


def H_rb(L, inertia=I3):
    return rigid_body_energy(L, inertia)


def H_top(L, G):
    return rigid_body_energy(L, I3) + MG * jnp.dot(G, CHI)


def top_state():
    G = jnp.array([0.3, 0.2, 1.0])
    return jnp.array([0.5, 0.3, 1.0]), G / jnp.linalg.norm(G)


def midpoint(f, **kw):
    return lambda z, dt: implicit_midpoint_step(f, z, dt, **kw)[0]


def rk4(f, z, dt, n):
    """Independent reference: classical RK4 on a pytree state, n steps (lax.fori_loop)."""

    def step(_, z):
        add = lambda a, b, c: jax.tree.map(lambda x, y: x + c * y, a, b)
        k1 = f(z)
        k2 = f(add(z, k1, dt / 2))
        k3 = f(add(z, k2, dt / 2))
        k4 = f(add(z, k3, dt))
        ks = jax.tree.map(lambda a, b, c, d: a + 2 * b + 2 * c + d, k1, k2, k3, k4)
        return add(z, ks, dt / 6)

    return lax.fori_loop(0, n, step, z)


def run(step, z, dt, n):
    return lax.fori_loop(0, n, lambda _, z: step(z, dt), z)


@jax.jit
def _strang_long(L, dt):
    """10^6 Strang steps in 10 chunks: per chunk the max energy error and max |L|^2 relative drift."""
    E0, C0 = H_rb(L), so3_casimir(L)

    def chunk(L, _):
        def step(L, _):
            L = rigid_body_strang(L, dt, I3)
            return L, (jnp.abs(H_rb(L) - E0), jnp.abs(so3_casimir(L) / C0 - 1))

        L, (e, c) = lax.scan(step, L, None, length=100_000)
        return L, (e.max(), c.max())

    return lax.scan(chunk, L, None, length=10)[1]


def test_strang_casimir_roundoff_and_bounded_energy_1e6_steps():
    t = time.perf_counter()
    e, c = jax.block_until_ready(_strang_long(L0, 1e-3))
    print(f"10^6 Strang steps: {time.perf_counter() - t:.2f} s (incl. compile)")
    print(f"max |L|^2 rel drift {float(c.max()):.2e}; max |dE| first/last tenth {e[0]:.3e}/{e[-1]:.3e}")
    # 5e6 rotations, each rounds its two outputs once: a random walk of size ~eps*sqrt(5e6) = 5e-13
    # (Brouwer's law) is the floor in float64; measured: 2e-13 for this L0, ensemble RMS 1.5e-13.
    assert float(c.max()) <= EPS * np.sqrt(5e6)
    assert float(e.max()) < 1e-8  # O(dt^2) error constant
    assert float(e[-1]) <= 1.05 * float(e[0])  # no secular growth


def _order(step, dts, T, z0=L0, f=None):
    f = so3_flow(jax.grad(H_rb)) if f is None else f
    ref = jax.jit(rk4, static_argnums=(0, 3))(f, z0, T / 40_000, 40_000)
    errs = [float(jnp.max(jnp.abs(jax.jit(run, static_argnums=(0, 3))(step, z0, T / n, n) - ref))) for n in dts]
    hs = [T / n for n in dts]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    print(f"errors {[f'{x:.2e}' for x in errs]} slope {slope:.3f}")
    return slope, errs


@pytest.mark.parametrize(
    "name,step,nominal,ns",
    [
        ("strang", lambda L, dt: rigid_body_strang(L, dt, I3), 2, (20, 40, 80, 160)),
        ("order4", lambda L, dt: rigid_body_order4(L, dt, I3), 4, (10, 20, 40, 80)),
        ("midpoint", midpoint(so3_flow(jax.grad(H_rb))), 2, (20, 40, 80, 160)),
    ],
)
def test_convergence_order(name, step, nominal, ns):
    slope, errs = _order(step, ns, 2.0)
    assert abs(slope - nominal) <= 0.15, (name, slope, errs)
    assert min(errs) > 1e-12  # still above the reference's own error and roundoff


@pytest.mark.parametrize("step", [rigid_body_strang, rigid_body_order4])
@pytest.mark.parametrize("dt", [1e-3, 0.1, 0.7])
def test_reversible(step, dt):
    L = jnp.array([[1.0, 0.1, 0.5], [-0.3, 2.0, 0.7], [0.0, 0.0, 1.0]])
    back = step(step(L, dt, I3), -dt, I3)
    assert float(jnp.max(jnp.abs(back - L))) <= 1e-14


def test_implicit_midpoint_symmetric():
    f = so3_flow(jax.grad(H_rb))
    fwd = implicit_midpoint_step(f, L0, 0.1)[0]
    assert float(jnp.max(jnp.abs(implicit_midpoint_step(f, fwd, -0.1)[0] - L0))) <= 1e-14


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_axis_flow_sign_against_rk4(axis):
    Hi = lambda L: L[axis] ** 2 / (2 * I3[axis])
    L = jnp.array([0.8, -0.6, 0.4])
    ref = rk4(so3_flow(jax.grad(Hi)), L, 1e-3, 1500)
    got = axis_flow(L, axis, 1.5, I3)
    assert float(jnp.max(jnp.abs(got - ref))) <= 1e-12
    assert float(got[axis]) == float(L[axis])
    # and the plain rotation is right-handed: e_x rotated about e_z by +90 degrees is e_y
    np.testing.assert_allclose(axis_rotation(jnp.eye(3)[axis], (axis + 2) % 3, jnp.pi / 2),
                               jnp.eye(3)[(axis + 1) % 3], atol=1e-15)  # fmt: skip


def test_heavy_top_implicit_midpoint_casimirs_and_energy():
    f = heavy_top_flow(jax.grad(H_top, argnums=(0, 1)))
    z0 = top_state()
    C0, E0 = heavy_top_casimirs(*z0), H_top(*z0)

    @jax.jit
    def go(z):
        def step(z, _):
            z, info = implicit_midpoint_step(f, z, 0.01)
            c = heavy_top_casimirs(*z)
            return z, (jnp.abs(c[0] - C0[0]), jnp.abs(c[1] - C0[1]), jnp.abs(H_top(*z) - E0), info.converged)

        return lax.scan(step, z, None, length=10_000)[1]

    t = time.perf_counter()
    cg, cl, e, ok = jax.block_until_ready(go(z0))
    print(f"heavy top 1e4 steps {time.perf_counter() - t:.2f}s: |dG.G| {cg.max():.2e} |dL.G| {cl.max():.2e}")
    print(f"|dE| first/last tenth {e[:1000].max():.3e}/{e[-1000:].max():.3e}")
    assert bool(ok.all())
    assert float(cg.max()) <= 1e-12 and float(cl.max()) <= 1e-12
    # this H is quadratic (kinetic + linear potential), so midpoint conserves it too, up to roundoff
    assert float(e.max()) <= 1e-12


@pytest.mark.parametrize("solver", ["newton", "fixed_point"])
def test_implicit_midpoint_nonquadratic_H_keeps_casimir(solver):
    H = lambda L: H_rb(L) + 0.1 * L[0] ** 4
    f = so3_flow(jax.grad(H))
    step = jax.jit(lambda L: implicit_midpoint_step(f, L, 0.05, solver=solver))

    def body(L, _):
        L, info = step(L)
        return L, (so3_casimir(L), jnp.abs(H(L) - H(L0)), info.converged, info.iterations)

    L, (c, e, ok, its) = jax.jit(lambda L: lax.scan(body, L, None, length=20_000))(L0)
    drift = float(jnp.max(jnp.abs(c / so3_casimir(L0) - 1)))
    print(f"{solver}: |L|^2 drift {drift:.2e}, iterations max {int(its.max())}")
    print(f"|dE| max first/last tenth {float(e[:2000].max()):.3e}/{float(e[-2000:].max()):.3e}")
    assert bool(ok.all()) and drift <= 1e-12
    assert float(e.max()) < 1e-3 and float(e[-2000:].max()) <= 1.1 * float(e[:2000].max())


def test_midpoint_info_and_convergence_error():
    f = so3_flow(jax.grad(H_rb))
    z1, info = implicit_midpoint_step(f, L0, 0.1)
    assert isinstance(info, MidpointInfo) and bool(info.converged) and int(info.iterations) <= 5
    z2, info2 = implicit_midpoint_step(f, L0, 0.1, solver="fixed_point")
    assert bool(info2.converged) and float(jnp.max(jnp.abs(z1 - z2))) <= 1e-14
    _, bad = implicit_midpoint_step(f, 10 * L0, 5.0, solver="fixed_point", max_iter=10)
    assert not bool(bad.converged) and int(bad.iterations) <= 10  # diverges (stops early on nan)
    _, bad = implicit_midpoint_step(f, L0, 0.1, max_iter=1)
    assert not bool(bad.converged) and int(bad.iterations) == 1 and 0 < float(bad.residual) < 1e-3
    msg = str(ConvergenceError(5.0, int(bad.iterations), float(bad.residual)))
    assert "dt=5.0" in msg and "smaller dt" in msg and "max_iter" in msg
    with pytest.raises(ValueError, match="solver"):
        implicit_midpoint_step(f, L0, 0.1, solver="gauss")


def test_hat_and_generic_flow():
    v, w = jnp.array([[1.0, -2.0, 0.5], [0.1, 0.2, 0.3]]), jnp.array([0.3, 0.7, -1.1])
    np.testing.assert_allclose(hat(v) @ w, jnp.cross(v, w), rtol=1e-15)
    assert hat(v).shape == (2, 3, 3) and bool(jnp.all(hat(v) == -jnp.swapaxes(hat(v), -1, -2)))
    g = jax.grad(H_rb)
    np.testing.assert_allclose(generic_flow(hat, g)(L0), so3_flow(g)(L0), rtol=1e-15)
    check_skew(hat, L0)  # passes


def test_check_skew_errors():
    with pytest.raises(ValueError, match=r"`J` is not skew-symmetric: max \|J \+ J\^T\| = 2\.0"):
        check_skew(lambda z: hat(z) + jnp.eye(3), L0)
    with pytest.raises(ValueError, match="`J` must return a square"):
        check_skew(lambda z: jnp.zeros((3, 2)), L0)
    with pytest.raises(ValueError, match="`poisson` is not skew"):
        check_skew(lambda z: jnp.ones((6, 6)), top_state(), name="poisson")


def test_inertia_from_hamiltonian():
    np.testing.assert_allclose(inertia_from_hamiltonian(H_rb, jnp.float64), I3, rtol=1e-15)
    np.testing.assert_allclose(inertia_from_hamiltonian(lambda L: H_rb(L) + 7.0), I3, rtol=1e-15)
    for H in (
        lambda L: H_rb(L) + 0.1 * L[0] ** 4,  # not quadratic: Hessian at 0 is still diag(1/I)
        lambda L: H_rb(L) + 0.1 * L[0] * L[1],  # not diagonal
        lambda L: -H_rb(L),  # negative moments
    ):
        with pytest.raises(ValueError, match=r'`H` is not .*method="implicit_midpoint"'):
            inertia_from_hamiltonian(H, jnp.float64)

    # traced H (gradient w.r.t. its parameters): check skipped, I differentiable
    def loss(w):
        I = inertia_from_hamiltonian(lambda L: H_rb(L, w))
        return jnp.sum(run(lambda L, dt: rigid_body_strang(L, dt, I), L0, 0.01, 10) ** 2 * jnp.arange(3.0))

    np.testing.assert_allclose(jax.grad(loss)(I3), _fd(loss, I3), rtol=1e-6)


def _fd(fun, x, h=1e-6):
    return jnp.stack([(fun(x + h * e) - fun(x - h * e)) / (2 * h) for e in jnp.eye(x.size).reshape(-1, *x.shape)])


def test_grad_through_strang_matches_fd():
    w = jnp.array([0.3, -1.0, 2.0])
    loss_L = jax.jit(lambda L: jnp.dot(w, run(lambda L, dt: rigid_body_strang(L, dt, I3), L, 0.02, 100)))
    loss_I = jax.jit(lambda I: jnp.dot(w, run(lambda L, dt: rigid_body_strang(L, dt, I), L0, 0.02, 100)))
    np.testing.assert_allclose(jax.grad(loss_L)(L0), _fd(loss_L, L0), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(loss_I)(I3), _fd(loss_I, I3), rtol=1e-6)
    loss_o4 = jax.jit(lambda L: jnp.dot(w, run(lambda L, dt: rigid_body_order4(L, dt, I3), L, 0.05, 40)))
    np.testing.assert_allclose(jax.grad(loss_o4)(L0), _fd(loss_o4, L0), rtol=1e-6)


def test_grad_through_implicit_midpoint_matches_fd():
    w = jnp.array([0.3, -1.0, 2.0])

    def loss(L, inertia=I3, solver="newton"):
        f = so3_flow(jax.grad(lambda L: H_rb(L, inertia) + 0.1 * L[0] ** 4))
        return jnp.dot(w, run(midpoint(f, solver=solver), L, 0.05, 20))

    for solver in ("newton", "fixed_point"):
        lz = jax.jit(lambda L, s=solver: loss(L, solver=s))
        np.testing.assert_allclose(jax.grad(lz)(L0), _fd(lz, L0), rtol=1e-6)
    lI = jax.jit(lambda I: loss(L0, I))  # parameter closed over inside f (custom_root closure)
    np.testing.assert_allclose(jax.grad(lI)(I3), _fd(lI, I3), rtol=1e-6)
    # tuple state (heavy top), reverse mode through 10 steps
    f = heavy_top_flow(jax.grad(H_top, argnums=(0, 1)))
    lt = jax.jit(lambda v: jnp.sum(jnp.concatenate(run(midpoint(f), (v[:3], v[3:]), 0.05, 10)) ** 2))
    v0 = jnp.concatenate(top_state())
    np.testing.assert_allclose(jax.grad(lt)(v0), _fd(lt, v0), rtol=1e-6)


def test_vmap_and_batch_dims_match_per_member():
    Ls = jax.random.normal(jax.random.key(0), (5, 3))
    f = so3_flow(jax.grad(H_rb))
    for step in (
        lambda L, dt: rigid_body_strang(L, dt, I3),
        lambda L, dt: rigid_body_order4(L, dt, I3),
        midpoint(f),
    ):
        many = jax.jit(jax.vmap(lambda L, s=step: run(s, L, 0.05, 30)))(Ls)
        one = jnp.stack([run(step, L, 0.05, 30) for L in Ls])
        np.testing.assert_allclose(many, one, rtol=1e-14, atol=1e-14)
    # leading batch dims directly (no vmap) and a traced dt
    batched = jax.jit(lambda L, dt: rigid_body_order4(L, dt, I3))(Ls.reshape(5, 1, 3), 0.05)
    np.testing.assert_allclose(batched[:, 0], jax.vmap(lambda L: rigid_body_order4(L, 0.05, I3))(Ls), rtol=1e-15)


@pytest.mark.slow
def test_strang_casimir_ensemble_random_walk():
    """Ensemble of 32 initial states, 10^6 steps: |L|^2 error is an unbiased sqrt(N) random walk."""
    Ls = jax.random.normal(jax.random.key(1), (32, 3))
    c = jax.vmap(lambda L: _strang_long(L, 1e-3)[1][-1])(Ls)  # max drift in the last tenth
    print(f"ensemble max |L|^2 drift: median {float(jnp.median(c)):.2e}, max {float(c.max()):.2e}")
    assert float(jnp.median(c)) <= 2e-13 and float(c.max()) <= 1e-12


@pytest.mark.slow
def test_heavy_top_long_run_1e5_steps():
    f = heavy_top_flow(jax.grad(H_top, argnums=(0, 1)))
    z0 = top_state()
    z = jax.jit(lambda z: run(midpoint(f), z, 0.01, 100_000))(z0)
    c, c0 = heavy_top_casimirs(*z), heavy_top_casimirs(*z0)
    print(f"1e5 steps: dG.G {float(c[0] - c0[0]):.2e}, dL.G {float(c[1] - c0[1]):.2e}")
    assert abs(float(c[0] - c0[0])) <= 1e-12 and abs(float(c[1] - c0[1])) <= 1e-12
    assert abs(float(H_top(*z) - H_top(*z0))) < 1e-3


def test_hat_and_casimir_helpers_are_what_they_name_on_batched_arrays():
    """The mutation run's survivors: a frozen Casimir (L / L) and a sum over every axis instead of the last
    passed before; hat's shape error names its argument."""
    from tpjax.structures import SO3

    rng = np.random.default_rng(4)
    L, G, w = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    np.testing.assert_allclose(hat(L) @ w[..., None], np.cross(L, w)[..., None], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(so3_casimir(L), np.sum(L**2, axis=-1), rtol=1e-14)
    c_gg, c_lg = heavy_top_casimirs(L, G)
    np.testing.assert_allclose(c_gg, np.sum(G**2, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(c_lg, np.sum(L * G, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(SO3().casimirs((L[0, 0],)), np.sum(L[0, 0] ** 2), rtol=1e-14)
    np.testing.assert_allclose(SO3().casimirs((L,)), np.sum(L**2, axis=-1), rtol=1e-14)
    with pytest.raises(ValueError, match=r"hat: argument `v` must have shape \(..., 3\); got \(4,\)"):
        hat(jnp.ones(4))


def test_check_skew_tolerance_follows_the_dtype():
    """float64 J: 100 eps of float64, not of float32 (a mutation survivor took float32's for every dtype)."""
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    off = A + np.array([[0.0, 1e-10], [0.0, 0.0]])  # asymmetry 1e-10: above 100 eps64, below 100 eps32
    np.testing.assert_array_equal(check_skew(lambda z: jnp.asarray(A), jnp.zeros(2)), A)
    with pytest.raises(ValueError, match=r"`J` is not skew-symmetric: max \|J \+ J\^T\| = 1.000e-10"):
        check_skew(lambda z: jnp.asarray(off), jnp.zeros(2))
    off32 = (A + np.array([[0.0, 1e-6], [0.0, 0.0]])).astype(np.float32)  # within float32's 100 eps
    big = 1e6 * A + np.array([[0.0, 1e-9], [0.0, 0.0]])  # the tolerance scales with max |J|
    np.testing.assert_array_equal(check_skew(lambda z: jnp.asarray(big), jnp.zeros(2)), big)
    with pytest.raises(ValueError, match=r"= 1.000e-04 at the given state \(tolerance 2.2e-08\)"):
        check_skew(lambda z: jnp.asarray(1e6 * A + np.array([[0.0, 1e-4], [0.0, 0.0]])), jnp.zeros(2))
    np.testing.assert_array_equal(check_skew(lambda z: jnp.asarray(A, jnp.int32), jnp.zeros(2)), A)  # integer J
    np.testing.assert_array_equal(check_skew(lambda z: jnp.asarray(off32), jnp.zeros(2, jnp.float32)), off32)


def test_so3_state_errors_name_the_part_and_the_fix():
    import tpjax

    H = lambda L: rigid_body_energy(L, I3)
    with pytest.raises(ValueError, match=r"state L must have shape \(3,\) for structure='so3', got \(4,\); vmap"):
        tpjax.integrate(H, jnp.ones(4), dt=0.1, steps=1, structure="so3")
    with pytest.raises(TypeError, match=r"state L must be floating point, got int32; e.g. L.astype"):
        tpjax.integrate(H, jnp.ones(3, jnp.int32), dt=0.1, steps=1, structure="so3")
