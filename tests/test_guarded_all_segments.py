"""The guarded adjoint's sweep over all segments at once (``guarded._all_segments_at_once``).

The fused executors first rebuild every segment in one fused loop, re-anchored at the segment boundaries, and
keep that result only if every boundary passes a check at least as strict as the per-segment one; otherwise
the per-segment policy runs. Checked here on the CPU (the fused loop's XLA reference; on CUDA the same loop is
one kernel): the check accepts a regular run and its result equals the per-segment one, it rejects a wrong
anchor and a NaN, and on a chaotic run, where it must reject, the gradient still equals adjoint="direct".
"""

import jax
import jax.numpy as jnp
import numpy as np

from tpjax.adjoint import guarded, loops, solve

jax.config.update("jax_enable_x64", True)


def _step(params, z, dt):
    """Leapfrog of a pendulum ensemble with strength params[0] (the whole ensemble is one state)."""
    q, p = z
    p = p - 0.5 * dt * params[0] * jnp.sin(q)
    q = q + dt * p
    return q, p - 0.5 * dt * params[0] * jnp.sin(q)


def _setup(steps=100, every=8, n=5):
    params, dt = [jnp.asarray(1.1)], jnp.asarray(0.05)
    z0 = [jnp.linspace(0.2, 1.0, n), jnp.linspace(-0.1, 0.3, n)]
    zT, _, anchors = loops.forward_anchored(lambda p, z, d: list(_step(p, z, d)), params, z0, dt, steps, None, every)
    bw = guarded.Backward(lambda p, z, d: list(_step(p, z, d)), params, dt, None, save_every=None, want_p=(True,),
                          want_dt=True, tol=guarded.default_tol([jnp.float64]), fuse=True)  # fmt: skip
    carry = ([jnp.ones(n), 0.5 * jnp.ones(n)], [jnp.zeros(())], jnp.zeros(()))
    return bw, carry, z0, list(anchors), every, steps


def test_a_regular_run_passes_and_equals_the_per_segment_sweeps():
    bw, carry, z0, anchors, every, steps = _setup()
    ok, fast = guarded._all_segments_at_once(bw, carry, z0, anchors, every, steps)
    assert bool(ok)
    slow = guarded.over_segments(bw.checked(bw.replay), carry, z0, anchors, 0, every, steps if steps % every else None)
    for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(slow), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=1e-15)


def test_a_wrong_or_nan_anchor_fails_the_check():
    bw, carry, z0, anchors, every, steps = _setup()
    for bad in (1e-6, np.nan):  # 1e-6 is far above tol = 3.7e-11 times the state's size
        broken = [anchors[0].at[3, 2].add(bad), anchors[1]]
        ok, _ = guarded._all_segments_at_once(bw, carry, z0, broken, every, steps)
        assert not bool(ok), bad
    broken_start = [z0[0].at[0].add(1e-6), z0[1]]  # the last boundary: the rebuilt z0 against the true one
    ok, _ = guarded._all_segments_at_once(bw, carry, broken_start, anchors, every, steps)
    assert not bool(ok)


def test_only_fused_runs_without_saving_and_with_long_enough_segments_take_it():
    bw, carry, z0, anchors, every, steps = _setup()
    assert guarded._all_segments_at_once(bw, carry, z0, anchors, 1, steps) is None  # one-step segments
    bw.fuse = False
    assert guarded._all_segments_at_once(bw, carry, z0, anchors, every, steps) is None
    bw.fuse, bw.tol = True, 0.0  # tol = 0 asks for the per-segment replay of everything
    assert guarded._all_segments_at_once(bw, carry, z0, anchors, every, steps) is None


def test_a_chaotic_run_falls_back_and_equals_direct():
    """Henon-Heiles at E = 0.16 (chaotic, as in test_adjoint_chaotic.py) 8000 steps in two segments: the
    all-segments check must fail and the per-segment policy (with replays) must give the exact gradient."""

    def step(params, z, dt):
        (lam,) = params
        q, p = z
        force = lambda q: -(q + lam * jnp.stack([2 * q[0] * q[1], q[0] ** 2 - q[1] ** 2]))
        p = p + 0.5 * dt * force(q)
        q = q + dt * p
        return q, p + 0.5 * dt * force(q)

    y, E = -0.1, 0.16
    z0 = (jnp.array([0.0, y]), jnp.array([np.sqrt(2 * (E - 0.5 * y**2 + y**3 / 3)), 0.0]))

    def loss(lam, z0, adjoint, fuse):
        kw = {} if adjoint == "direct" else {"reanchor": 4000}
        a, b = solve(step, z0, 0.05, (lam,), steps=8000, adjoint=adjoint, fuse=fuse, **kw)
        return jnp.sum(a**2) + jnp.sum(jnp.sin(b))

    got = jax.grad(loss, argnums=(0, 1))(jnp.asarray(1.0), z0, "guarded", True)
    want = jax.grad(lambda lam, z0: loss(lam, z0, "direct", False), argnums=(0, 1))(jnp.asarray(1.0), z0)
    plain = jax.grad(lambda lam, z0: loss(lam, z0, "reversible", False), argnums=(0, 1))(jnp.asarray(1.0), z0)
    flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
    err = lambda g: np.linalg.norm(flat(g) - flat(want)) / np.linalg.norm(flat(want))
    # the same re-anchored rebuild unchecked is wrong by 1e-3: the sweep over all segments (which is that
    # rebuild) must have been rejected for the default to be right
    assert err(plain) > 1e-3
    assert err(got) < 1e-6


def test_a_saving_run_with_a_ragged_last_segment_takes_the_per_segment_sweeps_exactly():
    """With saved states the sweep over all segments is not used; the per-segment fused sweeps then handle a
    last segment cut short by ``steps`` (36 steps in segments of 8: the last has 4 active steps)."""
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
