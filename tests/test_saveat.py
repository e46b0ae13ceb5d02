"""SaveAt: saving at chosen grid times, every k steps, and observables fn(t, state) instead of states."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

jax.config.update("jax_enable_x64", True)


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


S0 = (jnp.float64(1.2), jnp.float64(0.1))
DT, STEPS = 0.01, 120


def full():
    return tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS)  # every step saved


def test_ts_steps_t1_equal_slices_of_the_full_trajectory():
    ref = full()
    idx = np.array([3, 10, 17, 60, 120])
    sol = tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(ts=idx * DT))
    np.testing.assert_array_equal(sol.states[0], ref.states[0][idx])
    np.testing.assert_array_equal(sol.energies, ref.energies[idx])
    np.testing.assert_allclose(sol.ts, idx * DT, rtol=1e-14)
    every = tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(steps=30, t1=True))
    np.testing.assert_array_equal(every.states[1], ref.states[1][30::30])
    old = tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, save_every=30)
    new = tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(t0=True, steps=30))
    np.testing.assert_array_equal(old.states[0], new.states[0])


def test_fn_observable_equals_reducing_saved_states_under_jit_and_vmap():
    fn = lambda t, s: {"q2": s[0] ** 2, "tp": t * s[1]}
    q0 = jnp.linspace(0.2, 2.0, 5)
    ref = jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=DT, steps=STEPS, save_every=20))(q0)
    run = jax.jit(jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=DT, steps=STEPS,
                                                      saveat=tpjax.SaveAt(t0=True, steps=20, fn=fn))))  # fmt: skip
    sol = run(q0)
    assert sol.states is None and sol.observables["q2"].shape == (5, 7)
    np.testing.assert_allclose(sol.observables["q2"], ref.states[0] ** 2, rtol=1e-13)
    np.testing.assert_allclose(sol.observables["tp"], ref.ts * ref.states[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sol.energies, ref.energies, rtol=1e-13)
    np.testing.assert_array_equal(sol.final[0], ref.final[0])


def test_so3_casimirs_stream_with_fn():
    L0 = jnp.array([1.0, 0.2, 0.3])
    H = lambda L: 0.5 * (L[0] ** 2 / 1.0 + L[1] ** 2 / 2.0 + L[2] ** 2 / 3.0)
    kw = dict(dt=0.01, steps=40, structure="so3", method="rigid_body")
    ref = tpjax.trajectory(H, L0, save_every=10, **kw)
    sol = tpjax.trajectory(H, L0, saveat=tpjax.SaveAt(t0=True, steps=10, fn=lambda t, L: L[0]), **kw)
    np.testing.assert_allclose(sol.casimirs, ref.casimirs, rtol=1e-14)
    np.testing.assert_allclose(sol.observables, ref.states[:, 0], rtol=1e-14)


def test_grad_through_a_saved_observable_equals_direct():
    fn = lambda t, s: jnp.cos(s[0]) + s[1] ** 2

    def loss(q, adjoint, saveat):
        sol = tpjax.trajectory(pendulum, (q, jnp.float64(0.3)), dt=DT, steps=STEPS, saveat=saveat, adjoint=adjoint)
        return jnp.sum(sol.observables if saveat.fn else fn(None, sol.states))

    with_fn = tpjax.SaveAt(ts=[0.2, 0.5, 1.2], fn=fn)
    g_direct = jax.grad(loss)(1.0, "direct", tpjax.SaveAt(ts=[0.2, 0.5, 1.2]))
    for adjoint in ("direct", "reversible", "checkpointed"):
        np.testing.assert_allclose(jax.grad(loss)(1.0, adjoint, with_fn), g_direct, rtol=1e-10)
    eps = 1e-6
    fd = (loss(1.0 + eps, "direct", with_fn) - loss(1.0 - eps, "direct", with_fn)) / (2 * eps)
    np.testing.assert_allclose(g_direct, fd, rtol=1e-6)


def test_off_grid_times_are_refused_naming_the_nearest_grid_times():
    with pytest.raises(ValueError, match=r"nearest grid times are 0\.1 \(n=10\) and 0\.11 \(n=11\)"):
        tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(ts=[0.105]))
    with pytest.raises(ValueError, match="outside the run"):
        tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(ts=[2.0]))
    with pytest.raises(ValueError, match="must divide"):
        tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, saveat=tpjax.SaveAt(steps=7))
    with pytest.raises(ValueError, match="not both"):
        tpjax.trajectory(pendulum, S0, dt=DT, steps=STEPS, save_every=2, saveat=tpjax.SaveAt(t1=True))
    with pytest.raises(ValueError, match="saves nothing"):
        tpjax.SaveAt()
    with pytest.raises(TypeError, match="concrete dt"):
        jax.jit(lambda dt: tpjax.trajectory(pendulum, S0, dt=dt, steps=10, saveat=tpjax.SaveAt(ts=[0.05])))(0.01)


@pytest.mark.gpu
def test_fused_kernel_runs_observables_and_progress_in_chunks():
    import io

    q0 = jnp.linspace(0.1, 2.0, 64, dtype=jnp.float32)
    fn = lambda t, s: 0.5 * s[1] ** 2
    f = io.StringIO()

    sa = tpjax.SaveAt(t0=True, steps=20, fn=fn)

    def run(backend, **kw):
        one = lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=0.01, steps=200, backend=backend, saveat=sa, **kw)
        return jax.jit(jax.vmap(one))(q0)

    kern, xla = run("triton", progress={"file": f}), run("xla")
    assert kern.backend == "fused_kernel" and kern.carry is None
    np.testing.assert_allclose(kern.observables, xla.observables, rtol=1e-5, atol=1e-7)
    assert "200/200" in f.getvalue()
