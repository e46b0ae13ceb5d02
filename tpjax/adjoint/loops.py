"""Time-stepping loops shared by the adjoint methods: plain `lax.scan`, no custom derivative rules.

All functions take `step(params, z, dt) -> z` and static Python ints for the step counts. `forward` is what
"direct" and "checkpointed" differentiate with JAX's own reverse mode; `forward_anchored` and `backward` are
the two halves of the "reversible" adjoint (see `reversible.py`).

Inside `jax.shard_map` a scan carry must keep its type, including the manual mesh axes it varies over: a
state that meets per-shard parameters or dt after one step varies over their axes, and so must its start
(`carry_like`). Parameters and dt are left as they are (a step may be a traced jaxpr, replayed with the
types it was traced with). Outside shard_map these casts are no-ops.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..primitives._sharding import axes_of, cast_like, on_mesh, vary

tree_map = jax.tree_util.tree_map


@dataclasses.dataclass(frozen=True)
class VmappedStep:
    """``step`` under ``jax.vmap``: the state batched at axis 0, each parameter at ``p_axes`` (0 or None), dt
    at ``dt_axis`` (how the batching rules of ``reversible`` vmap a step; ``fused_sweep`` reads it as lanes)."""

    step: Callable
    p_axes: tuple
    dt_axis: int | None

    def __call__(self, params, z, dt):
        return jax.vmap(self.step, in_axes=(list(self.p_axes), 0, self.dt_axis))(params, z, dt)


def carry_like(z, *others):
    """The loop state ``z`` cast to vary over the manual mesh axes of ``z`` and ``others`` (shard_map), and
    on the context mesh if it has Explicit axes (``_sharding.on_mesh``)."""
    return vary(on_mesh(z), axes_of(z, others))


def run(step, params, z, dt, n, unroll=1):
    """`n` steps of z <- step(params, z, dt) in one `lax.scan` (reverse mode stores every step); `unroll`
    steps per loop iteration (the same arithmetic, fewer loop trips)."""
    if n == 0:
        return z
    z = carry_like(z, params, dt)
    unroll = max(1, min(unroll, n))
    body = step
    if unroll > 1 and jax.default_backend() == "cpu":
        # On the CPU unrolling pays for the loop trips, not for fusing steps: a barrier between steps keeps
        # each step's arithmetic exactly that of unroll 1, so results do not depend on how a run is chunked.
        body = lambda params, z, dt: lax.optimization_barrier(step(params, z, dt))
    z, _ = lax.scan(lambda z, _: (body(params, z, dt), None), z, None, length=n, unroll=unroll)
    return z


def run_checkpointed(step, params, z, dt, n, segments, unroll=1):
    """`n` steps split into about `segments` `jax.checkpoint`-ed scans.

    Reverse mode stores only the segment starts and, while one segment is re-run, its per-step residuals:
    O(segments + n / segments) states, O(sqrt(n)) for segments = ceil(sqrt(n)); about one extra forward pass.
    """
    if n == 0:
        return z
    z = carry_like(z, params, dt)
    length = -(-n // min(segments, n))
    full, rem = divmod(n, length)
    seg = jax.checkpoint(lambda p, z, dt: run(step, p, z, dt, length, unroll), prevent_cse=False)
    z, _ = lax.scan(lambda z, _: (seg(params, z, dt), None), z, None, length=full)
    if rem:
        z = jax.checkpoint(lambda p, z, dt: run(step, p, z, dt, rem, unroll))(params, z, dt)
    return z


def forward(step, params, z0, dt, steps, save_every, runner=run):
    """Returns (z_steps, saved) with saved[k] = z after (k + 1) * save_every steps (None without saving)."""
    if save_every is None:
        return runner(step, params, z0, dt, steps), None
    z0 = carry_like(z0, params, dt)

    def block(z, _):
        z = runner(step, params, z, dt, save_every)
        return z, z

    return lax.scan(block, z0, None, length=steps // save_every)


def forward_anchored(step, params, z0, dt, steps, save_every, every, unroll=1, fused_run=None, fused_saving_run=None):
    """`forward`, also returning anchors: ceil(steps / every) states, slot j = z_{min((j + 1) every, steps)}.

    Without saving: a scan over the anchor segments whose outputs are the anchors, each written once (a
    buffer carried through every step would be read and written whole per step on a GPU). With saving, step
    m writes z_m into slot (m - 1) // every, so the last write to slot j is z_{(j+1) every}: no branch.
    """
    one_loop = fused_saving(fused_saving_run, step, params, z0, dt, steps, save_every, every, unroll)
    if one_loop is not None:
        return one_loop
    if save_every is None:
        z = carry_like(z0, params, dt)
        full, rem = divmod(steps, every)
        runner = fused_run or run  # fused_run (fused_sweep.run): each segment one fused loop

        def segment(z, _):
            z = runner(step, params, z, dt, every, unroll)
            return z, z

        z, anchors = lax.scan(segment, z, None, length=full)
        if rem:
            z = runner(step, params, z, dt, rem, unroll)
            anchors = tree_map(lambda a, x: jnp.concatenate([a, x[None]]), anchors, z)
        return z, None, anchors
    block = save_every or steps
    slots = -(-steps // every)
    if fused_run is not None and every % save_every == 0:  # every anchor a saved state: save blocks, fused

        def save_block(z, _):
            z = fused_run(step, params, z, dt, save_every, unroll)
            return z, z

        z, saved = lax.scan(save_block, carry_like(z0, params, dt), None, length=steps // save_every)
        rows = np.array([min((j + 1) * every, steps) // save_every - 1 for j in range(slots)])
        return z, saved, tree_map(lambda s: s[rows], saved)
    z0 = carry_like(z0, params, dt)
    anchors = tree_map(lambda x: cast_like(jnp.zeros((slots, *x.shape), x.dtype), x, lead=1), z0)  # z0's layout

    def inner(carry, _):  # m: index of the state this step produces (a counter: no O(steps) index array)
        z, buf, m = carry
        z = step(params, z, dt)
        buf = tree_map(lambda b, x: lax.dynamic_update_index_in_dim(b, x, (m - 1) // every, 0), buf, z)
        return (z, buf, m + 1), None

    def outer(carry, _):
        carry, _ = lax.scan(inner, carry, None, length=block)
        return carry, carry[0]

    (z, anchors, _), saved = lax.scan(outer, (z0, anchors, jnp.asarray(1)), None, length=steps // block)
    return z, (saved if save_every else None), anchors


def fused_saving(run_saving, step, params, z0, dt, steps, save_every, every, unroll):
    """``forward_anchored``'s result from one fused loop that saves as it runs (``run_saving``: the caller's
    ``fused_sweep.run_saving``), or None where it does not apply (none given, a mesh, or anchors that are not
    saved states)."""
    if run_saving is None or (save_every is not None and (every % save_every or steps % save_every)):
        return None
    k = every if save_every is None else save_every
    out = run_saving(step, params, carry_like(z0, params, dt), dt, steps, k, unroll)
    if out is None:
        return None
    z, rows = out
    if save_every is None:
        return z, None, rows
    picks = np.array([min((j + 1) * every, steps) // save_every - 1 for j in range(-(-steps // every))])
    return z, rows, tree_map(lambda s: s[picks], rows)


def backward(step, params, zT, dt, ct_zT, ct_saved, *, steps, save_every, anchors, every, want_p, want_dt):
    """Reversible adjoint: walk z back with z_{m-1} = step(params, z_m, -dt), one `jax.vjp` of the step each.

    params is a list of leaves; want_p (one bool per leaf) and want_dt say which cotangents to accumulate.
    ct_saved (stacked like the saved states, or None) is added to the state cotangent at block ends.
    With anchors, the walk restarts from the stored z_m whenever every divides m. Returns
    (ct_z0, [ct_param for wanted leaves], ct_dt or None). Memory: a few states, independent of steps.
    """
    block = save_every or steps
    wanted = [p for p, w in zip(params, want_p, strict=True) if w]
    zT, ct_zT, anchors = carry_like((zT, ct_zT, anchors), params, dt, ct_saved)

    def step_at(pw, z, dtw):
        it = iter(pw)
        p = [next(it) if w else q for q, w in zip(params, want_p, strict=True)]
        return step(p, z, dtw if want_dt else dt)

    def inner(carry, _):  # reverse the step that produced z_m (m: a counter, no O(steps) index array)
        (z, a, gp, gdt), m = carry
        if anchors is not None:
            z = lax.cond(
                m % every == 0,
                lambda z: tree_map(lambda b: lax.dynamic_index_in_dim(b, m // every - 1, 0, False), anchors),
                lambda z: z,
                z,
            )
        z = step(params, z, -dt)
        _, vjp = jax.vjp(step_at, wanted, z, dt)
        cp, a, cdt = vjp(a)
        return ((z, a, tree_map(jnp.add, gp, cp), gdt + cdt if want_dt else gdt), m - 1), None

    def outer(carry, xs):
        k, ct = xs
        z, a, gp, gdt = carry
        if ct is not None:
            a = tree_map(jnp.add, a, ct)
        (carry, _), _ = lax.scan(inner, ((z, a, gp, gdt), (k + 1) * block), None, length=block)
        return carry, None

    init = (zT, ct_zT, on_mesh(tree_map(jnp.zeros_like, wanted)), on_mesh(jnp.zeros_like(dt)))
    (_, a, gp, gdt), _ = lax.scan(outer, init, (jnp.arange(steps // block), ct_saved), reverse=True)
    return a, gp, (gdt if want_dt else None)
