"""Saved states from the fused-integrate primitive (``save_every``): layout, vmap, grad, CUDA lowering.

On the CPU the primitive runs its reference path (TP-IR steps under the reversible adjoint); these tests
check its saved states against ``tpjax.trajectory`` / ``tpjax.adjoint.solve``, its batching rule (the saved
outputs carry the batch at axis 1), its derivatives, and that ``jax.jit(jax.vmap(...))`` cross-lowers for
CUDA to exactly one ``triton_kernel_call``. The ``gpu`` test compares the kernel with the XLA reference.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat
from tpjax.executors.fused_integrate import fused_integrate

jax.config.update("jax_enable_x64", True)

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}


def H(q, p):
    return 0.5 * p**2 - jnp.cos(q)


def comp_for(dtype=jnp.float32):
    z = jnp.zeros((), dtype)
    return tpjax.compile(H, (z, z), method="leapfrog")


def traj(q0, p0, dt, steps, k):
    """(Q, P) of shape (steps // k, N) from tpjax.trajectory (its states start with the initial state)."""
    one = lambda a, b: tpjax.trajectory(H, (a, b), dt=dt, steps=steps, save_every=k).states
    Q, P = jax.vmap(one)(q0, p0)
    return Q[:, 1:].T, P[:, 1:].T


@pytest.fixture(autouse=True)
def _triton_cache_dir(tmp_path_factory, monkeypatch):
    # importing jax_triton sets TRITON_CACHE_DIR="", which breaks triton.compile (see tpjax._compat).
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))


def test_results_and_layout_match_trajectory():
    comp = comp_for()
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.uniform(-2, 2, (2, 3)), jnp.float32)
    p = jnp.asarray(rng.uniform(-1, 1, (2, 3)), jnp.float32)
    out = fused_integrate(comp, q, p, jnp.float32(0.01), (), steps=40, save_every=10)
    assert len(out) == 4
    assert [o.shape for o in out] == [(2, 3), (2, 3), (4, 2, 3), (4, 2, 3)]
    assert all(o.dtype == jnp.float32 for o in out)
    Q, P = traj(q.reshape(-1), p.reshape(-1), 0.01, 40, 10)
    np.testing.assert_allclose(out[2].reshape(4, -1), Q, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[3].reshape(4, -1), P, rtol=1e-6, atol=1e-6)
    # the last saved row is the final state; the final state equals the non-saving primitive's
    np.testing.assert_array_equal(out[2][-1], out[0])
    np.testing.assert_array_equal(out[3][-1], out[1])
    q2, p2 = fused_integrate(comp, q, p, jnp.float32(0.01), (), steps=40)
    np.testing.assert_allclose(out[0], q2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out[1], p2, rtol=1e-6, atol=1e-7)


def test_matches_adjoint_solve_float64_jit():

    comp = comp_for(jnp.float64)
    q = jnp.linspace(-1.5, 1.5, 9)
    p = jnp.linspace(0.5, -0.5, 9)
    f = jax.jit(lambda q, p: fused_integrate(comp, q, p, 0.02, (), steps=30, save_every=3))
    qf, pf, Q, P = f(q, p)
    st = comp.method.stepper(comp)
    step, params = st.step, st.params
    z0 = jax.vmap(lambda a, b: st.initial(comp.consts, (a, b)))(q, p)
    zf, saved = jax.vmap(
        lambda z: tpjax.adjoint.solve(step, z, jnp.float64(0.02), params, steps=30, save_every=3, adjoint="direct")
    )(z0)
    np.testing.assert_allclose(Q, saved[0].T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(P, saved[1].T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(qf, zf[0], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("in_axes", [0, 1])
def test_vmap_saved_batch_axis(in_axes):
    """vmap over axis ``in_axes`` of (4, 5) arrays: every member gets (n_saves, *member_shape) saved
    states, equal to running the member alone; the batch folds into one primitive call."""
    comp = comp_for()
    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.uniform(-2, 2, (4, 5)), jnp.float32)
    p = jnp.asarray(rng.uniform(-1, 1, (4, 5)), jnp.float32)
    run = lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=12, save_every=4))
    f = jax.vmap(run, in_axes=in_axes)
    qf, pf, Q, P = f(q, p)
    size, member = q.shape[in_axes], q.shape[1 - in_axes]
    assert qf.shape == (size, member) and Q.shape == (size, 3, member) and P.shape == (size, 3, member)
    jaxpr = str(jax.make_jaxpr(f)(q, p))
    assert jaxpr.count("tp_fused_integrate") == 1
    for b in range(size):
        a = jnp.take(q, b, axis=in_axes)
        c = jnp.take(p, b, axis=in_axes)
        want = run(a, c)
        for got, w in zip((qf[b], pf[b], Q[b], P[b]), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7)


def test_nested_vmap_and_unbatched_p():
    comp = comp_for()
    q = jnp.linspace(-1, 1, 24, dtype=jnp.float32).reshape(2, 3, 4)
    p0 = jnp.linspace(0.1, 0.4, 4, dtype=jnp.float32)
    run = lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=6, save_every=2))
    f = jax.vmap(jax.vmap(run, in_axes=(0, None)), in_axes=(0, None))
    qf, pf, Q, P = f(q, p0)
    assert Q.shape == (2, 3, 3, 4) and qf.shape == (2, 3, 4)
    assert str(jax.make_jaxpr(f)(q, p0)).count("tp_fused_integrate") == 1
    want = run(q[1, 2], p0)
    np.testing.assert_allclose(Q[1, 2], want[2], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(P[1, 2], want[3], rtol=1e-6, atol=1e-7)


def test_vmap_over_dt_takes_the_reference():
    comp = comp_for()
    q = jnp.linspace(-1, 1, 5, dtype=jnp.float32)
    dts = jnp.asarray([0.01, 0.02, -0.01], jnp.float32)
    f = jax.vmap(lambda dt: tuple(fused_integrate(comp, q, q, dt, (), steps=8, save_every=4)))
    qf, pf, Q, P = f(dts)
    assert Q.shape == (3, 2, 5) and qf.shape == (3, 5)
    for b in range(3):
        Qb, Pb = traj(q, q, float(dts[b]), 8, 4)
        np.testing.assert_allclose(Q[b], Qb, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(P[b], Pb, rtol=1e-5, atol=1e-6)


def test_grad_through_saved_states():
    comp = comp_for(jnp.float64)
    q = jnp.linspace(-1.0, 1.0, 6)
    p = jnp.linspace(0.3, -0.3, 6)
    w = jnp.linspace(1.0, 2.0, 5)[:, None]

    def loss(q, p, dt):
        _, _, Q, P = fused_integrate(comp, q, p, dt, (), steps=20, save_every=4)
        return jnp.sum(w * Q**2) + jnp.sum(jnp.sin(P))

    def loss_ref(q, p, dt):
        one = lambda a, b: tpjax.trajectory(H, (a, b), dt=dt, steps=20, save_every=4, adjoint="direct").states
        Q, P = jax.vmap(one)(q, p)
        return jnp.sum(w * Q[:, 1:].T ** 2) + jnp.sum(jnp.sin(P[:, 1:]))

    dt = jnp.float64(0.05)
    g = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, p, dt)
    g_ref = jax.grad(loss_ref, argnums=(0, 1, 2))(q, p, dt)
    for a, b in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    # forward mode and grad under vmap (batched saved outputs) agree too
    t = jax.jvp(lambda q: loss(q, p, dt), (q,), (jnp.ones_like(q),))[1]
    np.testing.assert_allclose(t, jnp.sum(g_ref[0]), rtol=1e-9)
    one = lambda a, b: jnp.sum(fused_integrate(comp, a, b, dt, (), steps=20, save_every=4)[2] ** 2)
    gv = jax.vmap(jax.grad(one))(q[:, None], p[:, None])
    gv_ref = jax.grad(one)(q, p)
    np.testing.assert_allclose(gv[:, 0], gv_ref, rtol=1e-9, atol=1e-12)


def test_zero_steps_and_validation():
    comp = comp_for()
    q = jnp.ones(3, jnp.float32)
    qf, pf, Q, P = fused_integrate(comp, q, q, jnp.float32(0.1), (), steps=0, save_every=5)
    assert Q.shape == (0, 3) and P.shape == (0, 3)
    np.testing.assert_array_equal(qf, q)
    with pytest.raises(ValueError, match="must divide"):
        fused_integrate(comp, q, q, jnp.float32(0.1), (), steps=10, save_every=3)
    with pytest.raises(ValueError, match="positive int"):
        fused_integrate(comp, q, q, jnp.float32(0.1), (), steps=10, save_every=0)
    assert len(fused_integrate(comp, q, q, jnp.float32(0.1), (), steps=10)) == 2  # no saving: 2 results


# ---- CUDA lowering on this machine (cross-lowered; the kernel is compiled to PTX for sm_90) ---------------
@pytest.mark.parametrize("n,steps,k", [(64, 50, 10), (1, 1, 1), (7, 4, 4)])
def test_vmap_saving_lowers_to_one_triton_kernel_call(n, steps, k):
    """Ints equal to 1 (N, n_saves, save_every) become constexprs in jax-triton: those specialisations
    compile too."""
    if not _compat.has_jax_triton():
        pytest.skip("jax-triton not installed")
    comp = comp_for()
    q = jnp.linspace(0.1, 1.0, n, dtype=jnp.float32)
    f = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=steps, save_every=k)))
    text = _compat.lower_text_for_cuda(f, q, q)
    assert text.count("triton_kernel_call") == 1
    assert f"tensor<{steps // k}x{n}xf32>" in text  # the saved (n_saves, N) outputs come from the kernel


def test_grad_of_saving_runs_the_fused_loops_and_the_value_alone_the_step_kernel():
    """The gradient of a saving run: its anchored forward run (save blocks) and its backward sweep (the
    saved-state cotangents injected as it passes them) are fused-loop kernels, and the value under
    differentiation is that forward run's, not a second run of the step kernel; the value alone is the step
    kernel."""
    from tests._hlo import kernel_names

    if not _compat.has_jax_triton():
        pytest.skip("jax-triton not installed")
    comp = comp_for()
    q = jnp.linspace(0.1, 1.0, 32, dtype=jnp.float32)
    loss = lambda a: jnp.sum(fused_integrate(comp, a, a, jnp.float32(0.01), (), steps=8, save_every=2)[2])
    loops = ["fused_loop_kernel"] * 2
    assert kernel_names(_compat.lower_text_for_cuda(jax.grad(loss), q)) == loops
    assert kernel_names(_compat.lower_text_for_cuda(jax.value_and_grad(loss), q)) == loops
    assert kernel_names(_compat.lower_text_for_cuda(loss, q)) == ["fused_step_kernel"]  # the value alone


# ---- on a GPU: fused saving equals the XLA reference -------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 7, 4097])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("steps,k", [(100, 10), (100, 1), (100, 100)])
def test_fused_saving_matches_xla(n, dtype, tol, steps, k):
    dt_ = DTYPES[dtype]
    comp = comp_for(dt_)
    rng = np.random.default_rng(n)
    q = jnp.asarray(rng.uniform(-2.0, 2.0, n), dt_)
    p = jnp.asarray(rng.uniform(-1.0, 1.0, n), dt_)
    f = jax.jit(lambda q, p: tuple(fused_integrate(comp, q, p, dt_(0.01), (), steps=steps, save_every=k)))
    assert "triton_kernel_call" in f.lower(q, p).as_text()
    qf, pf, Q, P = f(q, p)
    Qx, Px = jax.jit(lambda q, p: traj(q, p, 0.01, steps, k))(q, p)
    assert Q.shape == (steps // k, n) and P.shape == (steps // k, n)
    np.testing.assert_allclose(np.asarray(Q), np.asarray(Qx), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(P), np.asarray(Px), rtol=tol, atol=tol)
    np.testing.assert_array_equal(np.asarray(qf), np.asarray(Q[-1]))
    np.testing.assert_array_equal(np.asarray(pf), np.asarray(P[-1]))


@pytest.mark.gpu
def test_trajectory_auto_uses_the_saving_kernel_on_gpu():
    import jax
    import jax.numpy as jnp

    import tpjax

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    q = jnp.linspace(-2.0, 2.0, 1000, dtype=jnp.float32)
    run = lambda backend: jax.jit(jax.vmap(lambda a: tpjax.trajectory(H, (a, jnp.float32(0.0)), dt=0.01, steps=100,
                                                                     save_every=10, backend=backend)))  # fmt: skip
    assert "tp_fused_integrate" in str(jax.make_jaxpr(run("auto"))(q))
    a, b = run("auto")(q), run("xla")(q)
    assert a.states[0].shape == (1000, 11)
    for x, y in zip(a.states, b.states, strict=True):
        assert float(jnp.max(jnp.abs(x - y))) < 1e-4
    assert float(jnp.max(jnp.abs(a.energies - b.energies))) < 1e-4
