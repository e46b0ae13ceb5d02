"""The guarded adjoint's sweep over all segments at once (``guarded._all_segments_at_once``).

The fused executors first rebuild every segment in one fused loop, re-anchored at the segment boundaries, and
keep that result only if every boundary passes a check at least as strict as the per-segment one; otherwise
the per-segment policy runs. Checked here on the CPU (the fused loop's XLA reference; on CUDA the same loop is
one kernel): the check accepts a regular run and its result equals the per-segment one, it rejects a wrong
anchor and a NaN, and on a chaotic run, where it must reject, the result is the per-segment policy's (whose
gradient equals adjoint="direct"). The kernel's anchor injection is checked against the reference in the
interpreter group (``tests/_interpret_loops.py``); the reference against a loop written here.
"""

import jax
import jax.numpy as jnp
import numpy as np

from tests.test_guarded_policy import _step  # leapfrog of a pendulum (ensemble) with strength params[0]
from tpjax.adjoint import guarded, loops
from tpjax.primitives.fused_loop import fused_loop

jax.config.update("jax_enable_x64", True)


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


def test_the_default_order_equals_the_per_segment_sweeps():
    """all_segments_first (the CUDA lowering's order: the last segment by the per-segment rule, the others at
    once) on a regular run with a ragged last segment, with the last anchor broken (its sweep rejected: the
    others then go by the per-segment rule as well) and with a middle one broken (the sweep at once rejected):
    the per-segment result each time."""
    bw, carry, z0, anchors, every, steps = _setup(steps=100, every=8)  # 13 segments, the last one 4 steps
    broken_last = [anchors[0].at[-1].add(1e-6), anchors[1]]
    broken_middle = [anchors[0].at[5].add(1e-6), anchors[1]]
    for anchors_ in (anchors, broken_last, broken_middle):
        got = guarded.all_segments_first(bw, carry, z0, anchors_, every, steps, steps)
        want = guarded.over_segments(bw.checked(bw.replay), carry, z0, anchors_, 0, every, steps)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-15)


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


def test_a_chaotic_run_is_rejected_and_gets_the_per_segment_result():
    """Henon-Heiles at E = 0.16 (chaotic, as in test_adjoint_chaotic.py), 8000 steps in two segments: the
    re-anchored rebuild misses by more than tol, so the check must fail and the result must be the per-segment
    policy's (with its replays; it equals adjoint="direct" in test_adjoint_chaotic.py). Not against "direct"
    here: 4000 steps amplify a last-bit difference of the compiled forward by ~1e11, so two compilations of
    the same run already differ by ~1e-5 in the gradient (an ill-conditioned problem, not a wrong one)."""

    def step(params, z, dt):  # the state as four scalars: a body the loop kernel can take
        (lam,) = params
        x, y, px, py = z
        force = lambda x, y: (-(x + 2 * lam * x * y), -(y + lam * (x * x - y * y)))
        fx, fy = force(x, y)
        px, py = px + 0.5 * dt * fx, py + 0.5 * dt * fy
        x, y = x + dt * px, y + dt * py
        fx, fy = force(x, y)
        return [x, y, px + 0.5 * dt * fx, py + 0.5 * dt * fy]

    y, E, steps, every = -0.1, 0.16, 6000, 2000
    z0 = [jnp.asarray(0.0), jnp.asarray(y), jnp.asarray(np.sqrt(2 * (E - 0.5 * y**2 + y**3 / 3))), jnp.asarray(0.0)]
    params, dt = [jnp.asarray(1.0)], jnp.asarray(0.05)
    _, _, anchors = loops.forward_anchored(step, params, z0, dt, steps, None, every)
    bw = guarded.Backward(step, params, dt, None, save_every=None, want_p=(True,), want_dt=False,
                          tol=guarded.default_tol([jnp.float64]), fuse=True)  # fmt: skip
    carry = ([2 * a[-1] for a in anchors[:2]] + [jnp.cos(a[-1]) for a in anchors[2:]], [jnp.zeros(())], jnp.zeros(()))
    ok, unchecked = guarded._all_segments_at_once(bw, carry, z0, list(anchors), every, steps)
    assert not bool(ok)
    got = guarded.all_segments_first(bw, carry, z0, list(anchors), every, steps, None)
    segmented = lambda c: guarded.over_segments(bw.checked(bw.replay), c, z0, list(anchors), 0, every, None)

    want = segmented(carry)
    flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
    err = lambda g: np.linalg.norm(flat(g) - flat(want)) / np.linalg.norm(flat(want))
    # the unchecked rebuild is 1.3e-8 off (float64, where the policy promises round-off): kept out exactly
    assert err(got) < 1e-13 and err(unchecked) > 1e-10, (err(got), err(unchecked))


def test_the_reference_anchor_injection_is_the_loop_it_describes():
    """fused_loop with inject_mode="anchor" (the XLA reference, which the kernel is checked against) equals
    a Python loop: where m = m0 - i is a multiple of every, record |z - row| and continue from the row."""
    body = lambda c, v: [0.5 * c[0] + v[0], c[1], c[2]]
    rows = np.array([[1.0, -2.0, 3.0], [0.25, 0.5, 4.0], [7.0, 8.0, -9.0]])  # row k: z_{3 (k + 1)}
    z0, shift = np.array([0.3, -0.7, 2.0]), np.array([0.1, 0.2, 0.3])
    zero = jnp.zeros(3)
    out = fused_loop(body, [jnp.asarray(z0), zero, zero], [jnp.asarray(shift)], 7, n_max=8, lanes=1,
                     lane_invariants=(True,), inject=[jnp.asarray(rows)], inject_into=(0,), inject_every=3, m0=9,
                     inject_mode="anchor")  # fmt: skip
    z, worst, total = z0.copy(), np.zeros(3), np.zeros(3)
    for i in range(7):
        m = 9 - i
        if m % 3 == 0:
            miss = np.abs(z - rows[m // 3 - 1])
            worst, total, z = np.maximum(worst, miss), total + miss, rows[m // 3 - 1].copy()
        z = 0.5 * z + shift
    for got, want in zip(out, (z, worst, total), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-15)
    assert float(np.max(worst)) > 1.0  # the rows are far from the run: a record that stayed zero fails


def test_anchor_injection_needs_two_per_lane_records():
    with np.testing.assert_raises_regex(ValueError, "last two carried values, one per lane"):
        fused_loop(lambda c, v: c, [jnp.zeros(3), jnp.zeros((3, 2))], [], n_max=2, lanes=1, inject=[jnp.zeros((1, 3))],
                   inject_into=(0,), inject_every=1, m0=2, inject_mode="anchor")  # fmt: skip


def test_the_reference_saving_loop_is_the_loop_it_describes():
    """fused_loop with save_every (the anchored forward run in one loop): the carry after n_max iterations
    and, stacked after it, the carry after iterations 3, 6 and 7 (the last row after a shorter segment), equal
    to a Python loop; under jax.vmap (one more lane axis) the rows keep their leading row axis."""
    body = lambda c, v: [0.5 * c[0] + v[0], c[1] * c[0]]
    z0, shift = np.array([0.3, -0.7, 2.0]), np.array([0.1, 0.2, 0.3])
    run = lambda z, s: fused_loop(body, [z, jnp.ones(3)], [s], n_max=7, lanes=1, lane_invariants=(True,),
                                  save_every=3)  # fmt: skip
    out = run(jnp.asarray(z0), jnp.asarray(shift))
    z, w, rows = z0.copy(), np.ones(3), []
    for i in range(1, 8):
        z, w = 0.5 * z + shift, w * z
        if i % 3 == 0 or i == 7:
            rows.append((z.copy(), w.copy()))
    want = [z, w, np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])]
    assert [np.shape(o) for o in out] == [(3,), (3,), (3, 3), (3, 3)]
    for got, ref in zip(out, want, strict=True):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-15)
    batched = jax.vmap(run)(jnp.stack([jnp.asarray(z0), 2 * jnp.asarray(z0)]), jnp.stack([jnp.asarray(shift)] * 2))
    assert batched[2].shape == (2, 3, 3)
    np.testing.assert_allclose(np.asarray(batched[2][0]), want[2], rtol=1e-15)


def test_saving_runs_every_iteration_without_injection():
    body = lambda c, v: c
    for kw in (dict(n=3), dict(save_every=0), dict(inject=[jnp.zeros((1, 3))], inject_into=(0,), inject_every=1, m0=1)):
        kw = {"save_every": 2, **kw}
        with np.testing.assert_raises_regex(ValueError, "save_every .a positive int. runs exactly n_max"):
            fused_loop(body, [jnp.zeros(3)], [], kw.pop("n", None), n_max=4, lanes=1, **kw)
