"""The "guarded" backward pass: the reversible reconstruction, checked against stored anchors, with an exact
replay of every segment where it drifted.

Policy (decided at run time, per segment, with `lax.cond`):

1. The forward pass stores `A` anchors, the true states at the ends of `A` equal segments of K steps
   (K = `reanchor`, default ceil(steps / 32): 32 anchors, so memory does not grow with `steps`).
2. Backward, segment by segment: rebuild the states from the segment's end anchor with
   z_{m-1} = step(z_m, -dt), pulling the cotangent back through each step, as the plain reversible adjoint.
   The rebuilt segment start is compared with its true value (the previous anchor, or z0):
   relative error = max |rebuilt - true| / max |true| over all state leaves; NaN fails.
3. Error <= tol: keep that segment's result. Otherwise discard it and redo the segment exactly: replay it
   forward from its start anchor storing 32 sub-anchors, and treat each sub-segment like step 2; a sub-segment
   that fails again is done by recomputation (every state re-run forward from the sub-segment start: exact,
   O(1) memory, (K/32)^2 steps). The gradient then uses only true forward states up to the tolerance.

Memory: anchors + sub-anchors (64 states) + a few states: flat in `steps` (measured in
benchmarks/bench_grad.py --memory). Cost when nothing fails: the plain reversible adjoint plus one error norm
per segment; a failing segment costs about 2 more sweeps of it (K/32 more if its sub-segments fail too).
Under `jax.vmap` (of the solve or around `jax.grad`: `reversible.backward_p` batches by vmapping the step)
the batch is one system, the error a max over it and `lax.cond` a real branch: one member failing replays
that segment for the whole batch. Inside `jax.shard_map` likewise: the error is a `pmax` over the manual axes
the state varies over, so every shard takes the same branch, and a replicated parameter's cotangent stays
non-varying (the step's vjp psums it each step, as in `loops.backward`).
"""

import jax
import jax.numpy as jnp
from jax import lax

from ..primitives._sharding import axes_of, cast_like
from . import fused_sweep
from .loops import carry_like

tree_map = jax.tree_util.tree_map

ANCHORS = 32  # default number of segments (first level)
SUB_ANCHORS = 32  # sub-segments of a replayed segment (second level)


def default_tol(dtypes) -> float:
    """eps^(2/3) of the least precise state dtype: 3.7e-11 for float64, 2.4e-5 for float32."""
    eps = max(float(jnp.finfo(d).eps) for d in dtypes)
    return eps ** (2.0 / 3.0)


def rel_error(z, ref):
    """max |z - ref| / max |ref| over all state leaves (a scalar; NaN if z is not finite).

    One scale for the whole state: a leaf that is zero at the anchor (p = 0 at rest, a Kahan compensation)
    would otherwise turn round-off into a large relative error and replay for nothing.
    """
    scale = jnp.max(jnp.stack([jnp.max(jnp.abs(r)) for r in ref]))
    err = jnp.max(jnp.stack([jnp.max(jnp.abs(a - r)) for a, r in zip(z, ref, strict=True)]))
    return err / (scale + jnp.finfo(scale.dtype).tiny)


def _get(buf, i):
    return [lax.dynamic_index_in_dim(b, i, 0, False) for b in buf]


def _where(c, new, old):
    return [jnp.where(c, a, b) for a, b in zip(new, old, strict=True)]


class Backward:
    """Cotangents of (z0, wanted params, dt) from those of (z_N, saved) for one guarded solve.

    Pieces all have a static length; steps past `end` (the last, ragged piece of a level) are masked no-ops,
    so each sweep is traced once (no separate code for a shorter last piece). end=None: nothing to mask.
    """

    def __init__(self, step, params, dt, ct_saved, *, save_every, want_p, want_dt, tol, fuse=False):
        self.step, self.params, self.dt, self.tol, self.fuse = step, params, dt, tol, fuse
        self.ct_saved, self.save_every = ct_saved, save_every
        self.want_p, self.want_dt = want_p, want_dt
        self.wanted = [p for p, w in zip(params, want_p, strict=True) if w]

    # ---------------------------------------------------------------- one step
    def _step_at(self, pw, z, dtw):
        it = iter(pw)
        p = [next(it) if w else q for q, w in zip(self.params, self.want_p, strict=True)]
        return self.step(p, z, dtw if self.want_dt else self.dt)

    def advance(self, z, m, dt, end):
        """z_m from z_{m-1} (dt) or z_{m-1} from z_m (-dt); a no-op for m > end."""
        z1 = self.step(self.params, z, dt)
        return z1 if end is None else _where(m <= end, z1, z)

    def pull(self, carry, z_prev, m, end):
        """Pull the cotangent of z_m (plus the saved state's, if z_m is saved) back through step m (m <= end)."""
        a, gp, gdt = carry
        if self.ct_saved is not None:
            hit = m % self.save_every == 0
            idx = jnp.clip(m // self.save_every - 1, 0, self.ct_saved[0].shape[0] - 1)
            a = [x + jnp.where(hit, c, jnp.zeros_like(c)) for x, c in zip(a, _get(self.ct_saved, idx), strict=True)]
        _, vjp = jax.vjp(self._step_at, self.wanted, z_prev, self.dt)
        cp, a, cdt = vjp(a)
        new = (a, tree_map(jnp.add, gp, cp), (gdt + cdt if self.want_dt else gdt))
        if end is None:
            return new
        flat, tree = jax.tree_util.tree_flatten(new)
        return jax.tree_util.tree_unflatten(tree, _where(m <= end, flat, jax.tree_util.tree_leaves(carry)))

    # ---------------------------------------------------------------- sweeps over one segment (s, s + n]
    def reversible(self, carry, z_end, s, n, end):
        """Rebuild backward from z_{s+n}; returns (rebuilt z_s, carry)."""
        if self.fuse:  # one fused loop (on CUDA a generated kernel), the same steps
            active = n if end is None else jnp.clip(end - s, 0, n)  # steps m > end are no-ops, and come first
            saved = None if self.ct_saved is None else (self.ct_saved, self.save_every, s + active)
            out = fused_sweep.sweep(self.step, self.params, self.dt, carry, z_end, active, n, self.want_p,
                                    self.want_dt, saved)  # fmt: skip
            if out is not None:
                return out

        def body(c, _):
            z, carry, m = c
            z = self.advance(z, m, -self.dt, end)
            return (z, self.pull(carry, z, m, end), m - 1), None

        (z, carry, _), _ = lax.scan(body, (z_end, carry, s + n), None, length=n)
        return z, carry

    def recompute(self, carry, z_start, s, n, end):
        """Exact with O(1) memory: z_{s+i-1} re-run forward from z_s for each i (n^2 steps)."""

        def body(c, _):
            carry, i = c

            def fwd(c, _):
                z, j = c
                return (_where(j < i, self.step(self.params, z, self.dt), z), j + 1), None

            (z_prev, _), _ = lax.scan(fwd, (z_start, jnp.asarray(1)), None, length=n - 1)
            return (self.pull(carry, z_prev, s + i, end), i - 1), None

        (carry, _), _ = lax.scan(body, (carry, jnp.asarray(n)), None, length=n)
        return carry

    def checked(self, fallback, with_verdict=False):
        """Segment rule: reversible sweep, kept if its rebuilt start is within tol, else `fallback`.
        ``with_verdict``: the segment returns (whether the sweep was kept, carry)."""

        def segment(carry, z_start, z_end, s, n, end):
            if n == 1:  # one step: the vjp at the true start is exact and as cheap as the check
                out = self.pull(carry, z_start, s + 1, end)
                return (jnp.asarray(True), out) if with_verdict else out
            z_rec, rev = self.reversible(carry, z_end, s, n, end)
            err = rel_error(z_rec, z_start)
            axes = tuple(sorted(axes_of(z_rec, z_start)))  # inside shard_map: one decision for all shards,
            err = lax.pmax(err, axes) if axes else err  # so the branch and its outputs' types are not varying
            ok = err <= self.tol  # False for NaN
            out = lax.cond(ok, lambda: rev, lambda: fallback(carry, z_start, s, n, end))
            return (ok, out) if with_verdict else out

        return segment

    def replay(self, carry, z_start, s, n, end):
        """Exact redo of segment (s, s + n]: forward from z_s storing sub-anchors, then checked sub-segments."""
        k = -(-n // SUB_ANCHORS)
        if end is not None or -(-n // k) * k != n:  # a sub-piece runs past the segment or past `steps`
            end = s + n if end is None else jnp.minimum(s + n, end)
        buf = self.anchors(z_start, s, -(-n // k), k, end)
        return over_segments(self.checked(self.recompute), carry, z_start, buf, s, k, end)

    def anchors(self, z_start, s, slots, k, end):
        """Forward from z_s; slot j holds z_{min(s + (j + 1) k, end)}."""
        buf = [cast_like(jnp.zeros((slots, *x.shape), x.dtype), x, lead=1) for x in z_start]
        n = slots * k

        def body(c, _):
            z, buf, i = c
            z = self.advance(z, s + i, self.dt, end)
            buf = [lax.dynamic_update_index_in_dim(b, x, (i - 1) // k, 0) for b, x in zip(buf, z, strict=True)]
            return (z, buf, i + 1), None

        (_, buf, _), _ = lax.scan(body, (z_start, buf, jnp.asarray(1)), None, length=n)
        return buf


def over_segments(segment, carry, z_first, buf, s0, k, end):
    """Apply segment(carry, z_start, z_end, s, k) to the pieces (s0 + j k, s0 + (j + 1) k], last first.

    z_first is the true state at s0 and buf[j] the true state at the end of piece j.
    """

    def body(carry, j):
        prev = _get(buf, jnp.maximum(j - 1, 0))
        z_start = _where(j == 0, z_first, prev)
        return (segment(carry, z_start, _get(buf, j), s0 + j * k, k, end), j - 1), None

    (carry, _), _ = lax.scan(
        lambda c, _: body(*c), (carry, jnp.asarray(buf[0].shape[0] - 1)), None, length=buf[0].shape[0]
    )
    return carry


def backward(step, params, z0, dt, ct_zT, ct_saved, *, steps, save_every, anchors_, every, want_p, want_dt, tol,
             fuse=False):  # fmt: skip
    """Guarded reverse pass (module docstring). Returns (ct_z0, [ct_param for wanted leaves], ct_dt or None).
    ``fuse``: the reversible sweeps as fused loops (``fused_sweep``)."""
    bw = Backward(step, params, dt, ct_saved, save_every=save_every, want_p=want_p, want_dt=want_dt, tol=tol,
                  fuse=fuse)  # fmt: skip
    end = steps if steps % every else None  # None: no piece runs past `steps`, no masking
    z0 = carry_like(list(z0), params, dt, ct_zT, ct_saved)
    # cotangents and anchors typed like the state (an unbatched zero cotangent broadcast by the batching
    # rule is replicated); accumulators like their parameter (jax.vjp of the step returns that type)
    ct_zT = [cast_like(c, z) for c, z in zip(ct_zT, z0, strict=True)]
    anchors_ = [cast_like(a, z, lead=1) for a, z in zip(anchors_, z0, strict=True)]
    if ct_saved is not None:
        bw.ct_saved = [cast_like(c, z, lead=1) for c, z in zip(ct_saved, z0, strict=True)]
    carry = (ct_zT, [cast_like(jnp.zeros_like(p), p) for p in bw.wanted], cast_like(jnp.zeros_like(dt), dt))
    a, gp, gdt = _on_cuda_all_segments_first(bw, carry, list(z0), list(anchors_), every, steps, end, ct_saved)
    return a, gp, (gdt if want_dt else None)


def _on_cuda_all_segments_first(bw, carry, z0, anchors, every, steps, end, ct_saved):
    """The per-segment policy, which the CUDA lowering tries to shorten: there, where the sweep over every
    segment at once is a kernel, it runs first and is kept if it passes its check (``all_segments_first``).
    (On the other platforms that sweep is the XLA loop, where the per-segment overhead is small.)"""
    segmented = lambda carry: over_segments(bw.checked(bw.replay), carry, z0, anchors, 0, every, end)
    if ct_saved is not None or not bw.fuse:
        return segmented(carry)
    on_cuda = lambda carry: all_segments_first(bw, carry, z0, anchors, every, steps, end)
    return lax.platform_dependent(carry, cuda=on_cuda, default=segmented)


def all_segments_first(bw, carry, z0, anchors, every, steps, end):
    """The per-segment policy's result, sweeping all segments but the last at once where that applies.

    The last segment goes by the per-segment rule; only if its sweep was kept are the others swept at once
    (``_all_segments_at_once``) and that kept if it passes its check; otherwise they go by the per-segment
    rule. So a run whose rebuild fails (a chaotic or poorly reversible one) mostly pays no wasted sweep."""
    slots = anchors[0].shape[0]
    if slots < 3:
        return over_segments(bw.checked(bw.replay), carry, z0, anchors, 0, every, end)
    last = (slots - 1) * every
    kept, carry = bw.checked(bw.replay, with_verdict=True)(carry, _get(anchors, slots - 2), _get(anchors, slots - 1),
                                                          last, every, end)  # fmt: skip
    rest = [a[: slots - 1] for a in anchors]
    segmented = lambda carry: over_segments(bw.checked(bw.replay), carry, z0, rest, 0, every, None)
    applies = []  # whether the sweep at once applies, asked on abstract values (nothing runs)
    jax.eval_shape(lambda c: applies.append(_all_segments_at_once(bw, c, z0, rest, every, last) is not None), carry)
    if not applies[0]:
        return segmented(carry)

    at_once = lambda carry: _all_segments_at_once(bw, carry, z0, rest, every, last)
    skipped = lambda carry: (jnp.asarray(False), jax.tree.map(jnp.zeros_like, carry))
    ok, result = lax.cond(kept, at_once, skipped, carry)
    return lax.cond(ok, lambda: result, lambda: segmented(carry))  # one copy of the per-segment sweeps


def _all_segments_at_once(bw, carry, z0, anchors, every, steps):
    """(ok, carry) of one fused sweep over every segment (``fused_sweep.sweep_anchored``), or None.

    The per-segment policy costs a launch, an error norm and a branch per segment, which on a large ensemble
    of cheap steps is most of the backward pass (H200, 4M pendulums x 1000 steps: 32 segments 21 ms, one
    11 ms). So the fused executors first sweep every segment in one loop, restarting from each anchor as the
    segments would, and keep the result only if every boundary passes a check at least as strict as the
    per-segment one: the largest |rebuilt - true| over boundaries, members and components <= tol times the
    smallest anchor scale, nothing NaN. Otherwise (a chaotic run, a NaN) the per-segment policy runs from the
    start, exact as before, after the wasted sweep."""
    if not bw.fuse or bw.tol <= 0 or every < 2 or steps <= every:
        return None
    z_end = [_get(anchors, anchors[0].shape[0] - 1)[k] for k in range(len(z0))]
    out = fused_sweep.sweep_anchored(bw.step, bw.params, bw.dt, carry, z_end, anchors, every, steps, bw.want_p,
                                     bw.want_dt)  # fmt: skip
    if out is None:
        return None
    z_rec, result, worst, total = out
    last = jnp.max(jnp.stack([jnp.max(jnp.abs(x - r)) for x, r in zip(z_rec, z0, strict=True)])).astype(worst.dtype)
    scale = jnp.min(jnp.stack([jnp.max(jnp.abs(r), axis=tuple(range(1, r.ndim))) for r in anchors]).max(0))
    scale = jnp.minimum(scale, jnp.max(jnp.stack([jnp.max(jnp.abs(r)) for r in z0]))).astype(worst.dtype)
    worst = jnp.maximum(jnp.max(worst), last)
    finite = jnp.isfinite(jnp.sum(total)) & jnp.isfinite(last)  # a NaN anywhere fails the check
    return finite & (worst <= bw.tol * (scale + jnp.finfo(scale.dtype).tiny)), result
