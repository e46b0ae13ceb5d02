"""The guarded adjoint's per-segment policy at its edges: a fused saving run whose last segment is cut short
by ``steps``, and the validation of ``tol`` (tests written against adjoint/ mutation survivors)."""

import jax
import jax.numpy as jnp
import numpy as np

from tpjax.adjoint import solve

jax.config.update("jax_enable_x64", True)


def _step(params, z, dt):
    """Leapfrog of a pendulum with strength params[0]."""
    q, p = z
    p = p - 0.5 * dt * params[0] * jnp.sin(q)
    q = q + dt * p
    return q, p - 0.5 * dt * params[0] * jnp.sin(q)


def test_a_saving_run_with_a_ragged_last_segment_equals_the_unfused_gradient():
    """36 steps in segments of 8, saved every 4: the last segment has 4 active steps of 8."""
    z0 = (jnp.asarray(0.3), jnp.asarray(0.1))

    def loss(k, fuse):
        zT, saved = solve(_step, z0, 0.05, (k,), steps=36, save_every=4, reanchor=8, fuse=fuse)
        return jnp.sum(saved[0] ** 2) + jnp.sum(jnp.sin(saved[1])) + zT[0]

    got, want = jax.grad(loss)(jnp.asarray(1.1), True), jax.grad(loss)(jnp.asarray(1.1), False)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_negative_tolerance_is_refused_naming_tol():
    z0 = (jnp.asarray(0.3), jnp.asarray(0.1))
    with np.testing.assert_raises_regex(ValueError, "tol must be None or a float >= 0"):
        solve(_step, z0, 0.05, (1.0,), steps=8, tol=-1.0)


def _pieces(fuse, n=3):
    """A guarded Backward over an ensemble of n pendulums (the step on arrays; ``fuse``: its sweeps as fused
    loops) and the true states z_m, m = 0 .. 100."""
    from tpjax.adjoint import guarded

    params, dt = [jnp.asarray(1.1)], jnp.asarray(0.05)
    step = lambda p, z, d: list(_step(p, z, d))
    z = [jnp.linspace(0.2, 1.0, n), jnp.linspace(-0.1, 0.3, n)]
    states = [z]
    for _ in range(100):
        states.append(step(params, states[-1], dt))
    bw = guarded.Backward(step, params, dt, None, save_every=None, want_p=(True,), want_dt=True,
                          tol=guarded.default_tol([jnp.float64]), fuse=fuse)  # fmt: skip
    return bw, step, params, dt, states


def test_a_ragged_segment_is_swept_over_its_active_steps_only():
    """The last segment (96, 104] of a 100-step run: 4 active steps; the sweep from z_100 must rebuild z_96
    and pull the cotangent back through those 4 steps, not 8 (XLA loop and fused loop)."""
    for fuse in (False, True):
        bw, step, params, dt, z = _pieces(fuse)
        ct = [jnp.ones(3), 0.5 * jnp.ones(3)]
        carry = (ct, [jnp.zeros(())], jnp.zeros(()))
        rebuilt, (a, gp, gdt) = bw.reversible(carry, z[100], 96, 8, 100)

        def four(p, z, d, step=step):
            for _ in range(4):
                z = step(p, z, d)
            return z

        _, vjp = jax.vjp(four, params, z[96], dt)
        want_p, want_a, want_dt = vjp(ct)
        for got, want in ((rebuilt, z[96]), (a, want_a), (gp, want_p), ([gdt], [want_dt])):
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-14, err_msg=str(fuse))


def test_sub_anchors_stop_at_the_end_of_the_run():
    """A replay's sub-anchors: slot j holds z_{min(s + (j + 1) k, end)}, never a state past ``end``."""
    bw, *_, z = _pieces(False)
    for end, want in ((100, (92, 96, 100)), (94, (92, 94, 94)), (None, (92, 96, 100))):
        buf = bw.anchors(z[88], 88, 3, 4, end)
        for j, m in enumerate(want):
            for b, x in zip(buf, z[m], strict=True):
                np.testing.assert_allclose(np.asarray(b[j]), np.asarray(x), rtol=1e-13, err_msg=f"{end} {j}")
