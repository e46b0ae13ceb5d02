"""Gradients on the fused kernels (issue 10, item 3): the guarded adjoint's two loops as fused loops.

Under ``jax.grad`` of the default (fused-executor) call, the anchored forward run and every reversible backward
sweep are ``primitives.fused_loop``; on CUDA each lowers to one generated Triton kernel
(``codegen.triton_loop``). Checked here on the CPU: the gradients equal ``adjoint="direct"`` (the fused
loops' reference is the same steps through XLA), for shared and per-member parameters and dt, under
``jax.vmap`` of ``jax.grad`` too; the CUDA cross-lowering of the default gradient holds fused-loop kernels
and no XLA time loop for them; a body over the statement limit is refused with its reason. The kernels' own
arithmetic runs under Triton's interpreter (tests/test_interpreted_kernels.py, group "loops") and on the GPU
(``-m gpu`` below).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tests._hlo import kernel_names
from tpjax import _compat
from tpjax.executors.choice import on_cuda

jax.config.update("jax_enable_x64", True)


def _pendulum(k):
    return lambda q, p: p**2 / 2 - k * jnp.cos(q)


def _loss(k, q0, p0, dt, adjoint=None, backend="auto", steps=100, method="leapfrog"):
    kw = {} if adjoint is None else {"adjoint": adjoint}
    run = lambda a, b: tpjax.integrate(_pendulum(k), (a, b), dt=dt, steps=steps, backend=backend, method=method, **kw)
    qf, pf = jax.vmap(run)(q0, p0)
    return jnp.sum(qf**2 + 0.5 * pf**3)


Q0, P0 = jnp.linspace(0.1, 1.2, 7), jnp.linspace(-0.3, 0.4, 7)


@pytest.mark.parametrize("method", ["leapfrog", "yoshida4"])
def test_default_gradient_through_fused_loops_equals_direct(method):
    """d/d(k, q0, p0, dt) of a vmapped ensemble: the parameter and dt shared by all members (their per-lane
    partials are summed after the sweep), 100 steps (32 guarded segments of 4, the last one shorter)."""
    f = lambda k, q, p, dt, **kw: _loss(k, q, p, dt, method=method, **kw)
    args = (jnp.asarray(0.9), Q0, P0, jnp.asarray(0.02))
    jaxpr = str(jax.make_jaxpr(jax.grad(f, argnums=(0, 1, 2, 3)))(*args))
    assert "tp_fused_loop" in jaxpr  # the anchored forward (the sweeps are inside the guarded backward)
    got = jax.grad(f, argnums=(0, 1, 2, 3))(*args)
    want = jax.grad(lambda *a: f(*a, adjoint="direct", backend="xla"), argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)


def test_vmap_of_grad_with_per_member_parameters_equals_direct():
    """jax.vmap(jax.grad(...)) over per-member k: the sweep's parameters are per lane."""
    ks = jnp.linspace(0.5, 1.5, 3)
    f = lambda k, **kw: _loss(k, Q0, P0, jnp.asarray(0.02), steps=37, **kw)
    got = jax.vmap(jax.grad(f))(ks)
    want = jax.vmap(jax.grad(lambda k: f(k, adjoint="direct", backend="xla")))(ks)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10)


def _step(params, z, dt):
    """Leapfrog of a pendulum with strength params[0], written directly in jnp (no compiled program)."""
    q, p = z
    p = p - 0.5 * dt * params[0] * jnp.sin(q)
    q = q + dt * p
    return q, p - 0.5 * dt * params[0] * jnp.sin(q)


@pytest.mark.parametrize("tol", [0.0, None])
def test_solve_fuse_gradient_equals_unfused_with_and_without_replays(tol):
    """solve(..., fuse=True) on any step function: tol=0 replays every segment (the fused sweep's result is
    discarded and redone), the default keeps it; both equal the unfused guarded adjoint."""
    from tpjax.adjoint import solve

    z0 = (jnp.asarray(0.3), jnp.asarray(0.1))
    loss = lambda k, fuse: sum(solve(_step, z0, 0.05, (k,), steps=40, tol=tol, fuse=fuse))
    got, want = jax.grad(loss)(jnp.asarray(1.1), True), jax.grad(loss)(jnp.asarray(1.1), False)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert "tp_fused_loop" in str(jax.make_jaxpr(jax.grad(loss), static_argnums=1)(jnp.asarray(1.1), True))


def test_solve_fuse_under_vmap_with_per_member_parameters_and_dt():
    """jax.vmap of solve(..., fuse=True) with a parameter and dt per member: the sweep's invariants are per
    lane (their cotangents are not summed over lanes); equal to the unfused guarded adjoint."""
    from tpjax.adjoint import solve

    ks, dts = jnp.linspace(0.8, 1.2, 4), jnp.linspace(0.03, 0.05, 4)
    q0, p0 = jnp.linspace(0.1, 0.4, 4), jnp.zeros(4)

    def loss(ks, dts, q0, fuse):
        run = lambda k, dt, q, p: sum(solve(_step, (q, p), dt, (k,), steps=100, fuse=fuse))  # segments of 4
        return jnp.sum(jax.vmap(run)(ks, dts, q0, p0) ** 2)

    got = jax.grad(loss, argnums=(0, 1, 2))(ks, dts, q0, True)
    want = jax.grad(loss, argnums=(0, 1, 2))(ks, dts, q0, False)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_saving_gradient_through_fused_loops_equals_direct(dtype):
    """A loss over the saved states of the fused primitive (96 steps saved every 8: anchors on save blocks,
    the saved-state cotangents injected into the sweep) w.r.t. q0 and dt, against adjoint="direct"."""
    from tpjax.executors.fused_integrate import fused_integrate

    comp = tpjax.compile(_pendulum(0.9), (jnp.asarray(0.1, dtype), jnp.asarray(0.2, dtype)))
    q0, p0, dt = Q0.astype(dtype), P0.astype(dtype), jnp.asarray(0.02, dtype)

    def loss(q, dt, adjoint="guarded"):
        qf, _, Q, P = fused_integrate(comp, q, p0, dt, (), steps=96, save_every=8, adjoint=adjoint)
        return jnp.sum(Q**2) + jnp.sum(jnp.sin(P)) + jnp.sum(qf)

    assert "tp_fused_loop" in str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(q0, dt))
    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(q0, dt)
    want = jax.jit(jax.grad(lambda q, dt: loss(q, dt, "direct"), argnums=(0, 1)))(q0, dt)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=tol, atol=tol)


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_default_gradient_cross_lowers_to_fused_loop_kernels(dtype):
    """CUDA cross-lowering of jax.grad of the default vmapped call: the anchored forward, the last segment's
    sweep, the sweep over the other segments at once and the per-segment sweep of its fallback are fused-loop
    kernels (the primal is not run a second time by the step kernel)."""
    q0, p0 = Q0.astype(dtype), P0.astype(dtype)
    f = lambda q: _loss(jnp.asarray(0.9, dtype), q, p0, jnp.asarray(0.02, dtype))
    names = kernel_names(_compat.lower_text_for_cuda(jax.grad(f), q0))
    assert names == ["fused_loop_kernel"] * 4, names


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")
@pytest.mark.parametrize("saving", [False, True])
def test_the_anchored_forward_run_is_one_kernel_launch(saving):
    """The forward half of the default gradient (jax.vjp's primal and residuals) lowers for CUDA to ONE
    fused-loop kernel that writes the anchors (or the saved states) as it passes them: no XLA loop launching
    it once per segment (32 launches on the H200 cost 2.4x the fused forward), no concatenation after it."""
    from tpjax.executors.fused_integrate import fused_integrate

    comp = tpjax.compile(_pendulum(0.9), (jnp.asarray(0.1), jnp.asarray(0.2)))
    dt = jnp.asarray(0.02)

    def loss(q):
        if saving:
            qf, _, Q, _ = fused_integrate(comp, q, P0, dt, (), steps=96, save_every=8, adjoint="guarded")
            return jnp.sum(Q**2) + jnp.sum(qf)
        return _loss(jnp.asarray(0.9), q, P0, dt, steps=1000)

    text = _compat.lower_text_for_cuda(lambda q: jax.vjp(loss, q), Q0)
    assert kernel_names(text) == ["fused_loop_kernel"], kernel_names(text)
    assert "stablehlo.while" not in text and "stablehlo.concatenate" not in text


def test_a_body_over_the_statement_limit_is_refused_with_its_reason():
    from tests.hamiltonians import KERNEL_ZOO
    from tpjax.adjoint.fused_sweep import SweepBody
    from tpjax.executors.fused_loop_kernel import kernel_source
    from tpjax.integrators.stepper import program_stepper

    H, state = KERNEL_ZOO["lennard_jones"]
    q0, p0 = state(jnp.float64)
    st = program_stepper(tpjax.compile(H, (q0, p0)).without_fsal())  # four force evaluations per sweep step
    z = [jax.ShapeDtypeStruct((3, *q0.shape), q0.dtype)] * 2
    body = SweepBody(st.step, 2, (), False)
    ok, why = kernel_source(body, [*z, *z], [jax.ShapeDtypeStruct((), q0.dtype)], lanes=1, lane_invariants=(False,))
    assert not ok and "statements" in why


@dataclasses.dataclass(frozen=True)
class _BrokenBody:
    """A body whose tracing fails with an error the generator does not expect."""

    def __call__(self, carry, inv):
        raise RuntimeError("boom")


def test_a_generator_defect_warns_and_falls_back_to_xla():
    from tpjax.executors.fused_loop_kernel import kernel_source

    z = [jax.ShapeDtypeStruct((3,), jnp.float32)]
    with pytest.warns(RuntimeWarning, match="fused-loop kernel generator failed .RuntimeError: boom"):
        ok, why = kernel_source(_BrokenBody(), z, z, lanes=1, lane_invariants=(True,))
    assert not ok and "please report it" in why


# ---------------------------------------------------------------- GPU
GPU_TOL = {"float32": 2e-3, "float64": 1e-9}


def _check_default_gradient_on_gpu(loss, x, y, dtype):
    """jax.grad of ``loss(x, y)`` (the default call: at least two fused-loop kernels in its lowering) against
    ``loss(x, y, backend="xla", adjoint="direct")``, relative to the largest reference component."""
    g = jax.jit(jax.grad(loss, argnums=(0, 1)))
    assert kernel_names(g.lower(x, y).as_text()).count("fused_loop_kernel") >= 2
    got = g(x, y)
    want = jax.jit(jax.grad(lambda x, y: loss(x, y, backend="xla", adjoint="direct"), argnums=(0, 1)))(x, y)
    for a, b in zip(got, want, strict=True):
        scale = max(float(jnp.abs(b).max()), 1.0)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=GPU_TOL[dtype] * scale)


@pytest.mark.gpu
@pytest.mark.skipif(not on_cuda(), reason="needs a CUDA GPU with jax-triton")
@pytest.mark.parametrize("dtype", sorted(GPU_TOL))
@pytest.mark.parametrize("n", [1, 7, 4097])
@pytest.mark.parametrize("system", ["pendulum", "kepler", "mlp"])
def test_gpu_gradient_kernels_equal_direct(system, n, dtype):
    from tests.hamiltonians import KERNEL_ZOO, ZOO

    H, state = {**ZOO, **KERNEL_ZOO}[system]
    q0, p0 = state(getattr(jnp, dtype))
    rng = np.random.default_rng(n)
    jitter = lambda x: jnp.asarray(np.asarray(x)[None] + 0.02 * rng.standard_normal((n, *np.shape(x))), dtype)
    q, p = jitter(q0), jitter(p0)

    def loss(q, dt, **kw):
        qf, pf = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=dt, steps=200, **kw))(q, p)
        return jnp.sum(qf**2) + jnp.sum(pf)

    _check_default_gradient_on_gpu(loss, q, jnp.asarray(0.01, dtype), dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not on_cuda(), reason="needs a CUDA GPU with jax-triton")
@pytest.mark.parametrize("dtype", sorted(GPU_TOL))
@pytest.mark.parametrize("n", [1, 7, 4097])
def test_gpu_trajectory_gradient_kernels_equal_direct(n, dtype):
    """A loss over a trajectory's saved states (the default trajectory: fused forward save blocks and a
    fused sweep with the saved cotangents injected) against backend="xla", adjoint="direct"."""
    rng = np.random.default_rng(n)
    q = jnp.asarray(1.0 + 0.1 * rng.standard_normal(n), dtype)
    p = jnp.zeros_like(q)

    def loss(q, k, **kw):
        run = lambda a, b: tpjax.trajectory(_pendulum(k), (a, b), dt=0.01, steps=200, save_every=10, **kw).states
        Q, P = jax.vmap(run)(q, p)
        return jnp.sum(Q**2) + jnp.sum(jnp.sin(P))

    _check_default_gradient_on_gpu(loss, q, jnp.asarray(0.9, dtype), dtype)


@pytest.mark.slow  # ~110 s on 2 cores: four unrolled 32-component loop kernels generated (CI runs -m slow too)
@pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")
def test_loop_kernels_take_states_of_at_most_32_components():
    """The H200 ran the default gradient of an FPU chain faster on the loop kernels at d = 32 (7.1 ms against
    23.7 on XLA) and slower at d = 48 and 64 (39.2 / 56.3 against 29.1 / 35.9): larger states run XLA."""
    from tests._hlo import kernel_names
    from tests.hamiltonians import fpu

    def loss(q):
        run = jax.vmap(lambda a, b: tpjax.integrate(fpu, (a, b), dt=0.01, steps=100))
        return jnp.sum(run(q, jnp.zeros_like(q))[0] ** 2)

    for d, kernels in ((32, 4), (48, 0)):  # d = 32: the forward, the last segment's sweep, the sweep of the
        # others at once and the per-segment sweep of its fallback
        text = _compat.lower_text_for_cuda(jax.grad(loss), jax.ShapeDtypeStruct((8, d), jnp.float32))
        assert kernel_names(text).count("fused_loop_kernel") == kernels, d
