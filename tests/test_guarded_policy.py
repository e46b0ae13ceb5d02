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
