"""The "guarded" backward pass: the reversible reconstruction, checked against stored anchors, with an exact
replay of every segment where it drifted.

Policy (decided at run time, per segment, with `lax.cond`):

1. The forward pass stores `A` anchors, the true states at the ends of `A` equal segments of K steps
   (K = `reanchor`, default ceil(steps / 32): 32 anchors, so memory does not grow with `steps`).
2. Backward, segment by segment: rebuild the states from the segment's end anchor with
   z_{m-1} = step(z_m, -dt), pulling the cotangent back through each step, as the plain reversible adjoint.
   The rebuilt segment start is compared with its true value (the previous anchor, or z0):
   relative error = max over state leaves of |rebuilt - true|_inf / (|true|_inf + 1e-3 |z|_inf), NaN = fail.
3. Error <= tol: keep that segment's result. Otherwise discard it and redo the segment exactly: replay it
   forward from its start anchor storing 32 sub-anchors, and treat each sub-segment like step 2; a sub-segment
   that fails again is done by recomputation (every state re-run forward from the sub-segment start: exact,
   O(1) memory, (K/32)^2 steps). The gradient then uses only true forward states up to the tolerance.

Memory: anchors + sub-anchors (64 states) + a few states: flat in `steps`. Cost when nothing fails: the plain
reversible adjoint plus one error norm per segment. Under a `jax.vmap` of the solve the batch is one system
(the step is vmapped), so the tests are single scalars and `lax.cond` stays a branch; a `jax.vmap` *around*
`jax.grad` turns it into a select that always runs the replay (still exact, about 2x + K/32 slower).
"""

import jax
import jax.numpy as jnp
from jax import lax

tree_map = jax.tree_util.tree_map

ANCHORS = 32  # default number of segments (first level)
SUB_ANCHORS = 32  # sub-segments of a replayed segment (second level)


def default_tol(dtypes) -> float:
    """eps^(2/3) of the least precise state dtype: 3.7e-11 for float64, 2.4e-5 for float32."""
    eps = max(float(jnp.finfo(d).eps) for d in dtypes)
    return eps ** (2.0 / 3.0)


def rel_error(z, ref):
    """Relative distance of the rebuilt state z from the true state ref (a scalar; NaN if z is not finite)."""
    sizes = [jnp.max(jnp.abs(r)) for r in ref]
    scale = 1e-3 * jnp.max(jnp.stack(sizes))
    errs = [
        jnp.max(jnp.abs(a - r)) / (s + scale + jnp.finfo(r.dtype).tiny) for a, r, s in zip(z, ref, sizes, strict=True)
    ]
    return jnp.max(jnp.stack(errs))


def _get(buf, i):
    return [lax.dynamic_index_in_dim(b, i, 0, False) for b in buf]


class Backward:
    """Cotangents of (z0, wanted params, dt) from those of (z_N, saved) for one guarded solve."""

    def __init__(self, step, params, dt, ct_saved, save_every, want_p, want_dt, tol):
        self.step, self.params, self.dt, self.tol = step, params, dt, tol
        self.ct_saved, self.save_every = ct_saved, save_every
        self.want_p, self.want_dt = want_p, want_dt
        self.wanted = [p for p, w in zip(params, want_p, strict=True) if w]

    # ---------------------------------------------------------------- one step
    def _step_at(self, pw, z, dtw):
        it = iter(pw)
        p = [next(it) if w else q for q, w in zip(self.params, self.want_p, strict=True)]
        return self.step(p, z, dtw if self.want_dt else self.dt)

    def pull(self, carry, z_prev, m):
        """Pull the cotangent of z_m (plus the saved state's, if z_m is saved) back through step m."""
        a, gp, gdt = carry
        if self.ct_saved is not None:
            hit = m % self.save_every == 0
            idx = jnp.maximum(m // self.save_every - 1, 0)
            a = [x + jnp.where(hit, c, jnp.zeros_like(c)) for x, c in zip(a, _get(self.ct_saved, idx), strict=True)]
        _, vjp = jax.vjp(self._step_at, self.wanted, z_prev, self.dt)
        cp, a, cdt = vjp(a)
        return a, tree_map(jnp.add, gp, cp), (gdt + cdt if self.want_dt else gdt)

    # ---------------------------------------------------------------- sweeps over one segment (s, s + n]
    def reversible(self, carry, z_end, s, n):
        """Rebuild backward from z_{s+n}; returns (rebuilt z_s, carry)."""

        def body(c, m):
            z, carry = c
            z = self.step(self.params, z, -self.dt)
            return (z, self.pull(carry, z, m)), None

        (z, carry), _ = lax.scan(body, (z_end, carry), s + 1 + jnp.arange(n), reverse=True)
        return z, carry

    def recompute(self, carry, z_start, s, n):
        """Exact with O(1) memory: z_{s+i-1} re-run forward from z_s for each i (n^2 steps)."""

        def body(carry, i):
            def advance(z, j):
                z1 = self.step(self.params, z, self.dt)
                return [jnp.where(j < i - 1, b, a) for a, b in zip(z, z1, strict=True)], None

            z_prev, _ = lax.scan(advance, z_start, jnp.arange(n - 1))
            return self.pull(carry, z_prev, s + i), None

        carry, _ = lax.scan(body, carry, 1 + jnp.arange(n), reverse=True)
        return carry

    def checked(self, fallback):
        """Segment rule: reversible sweep, kept if its rebuilt start is within tol, else `fallback`."""

        def segment(carry, z_start, z_end, s, n):
            if n == 1:  # one step: the vjp at the true start is exact and as cheap as the check
                return self.pull(carry, z_start, s + 1)
            z_rec, rev = self.reversible(carry, z_end, s, n)
            ok = rel_error(z_rec, z_start) <= self.tol  # False for NaN
            return lax.cond(ok, lambda: rev, lambda: fallback(carry, z_start, s, n))

        return segment

    def replay(self, carry, z_start, s, n):
        """Exact redo of segment (s, s + n]: forward from z_s storing sub-anchors, then checked sub-segments."""
        k = -(-n // SUB_ANCHORS)
        return over_segments(self.checked(self.recompute), carry, z_start, anchors(self, z_start, n, k), s, n, k)


def anchors(bw, z_start, n, k):
    """Forward n steps from z_start; slot j holds the state after min((j + 1) k, n) steps."""
    buf = [jnp.zeros((-(-n // k), *x.shape), x.dtype) for x in z_start]

    def body(c, i):
        z, buf = c
        z = bw.step(bw.params, z, bw.dt)
        return (z, [lax.dynamic_update_index_in_dim(b, x, (i - 1) // k, 0) for b, x in zip(buf, z, strict=True)]), None

    (_, buf), _ = lax.scan(body, (z_start, buf), 1 + jnp.arange(n))
    return buf


def over_segments(segment, carry, z_first, buf, s0, n, k):
    """Apply segment(carry, z_start, z_end, s, length) to (s0, s0 + n] cut in k-step pieces, last first.

    z_first is the true state at s0 and buf[j] the true state at s0 + min((j + 1) k, n).
    """
    full, rem = divmod(n, k)
    if rem:
        carry = segment(carry, z_first if full == 0 else _get(buf, full - 1), _get(buf, full), s0 + full * k, rem)

    def body(carry, j):
        prev = _get(buf, jnp.maximum(j - 1, 0))
        z_start = [jnp.where(j == 0, a, b) for a, b in zip(z_first, prev, strict=True)]
        return segment(carry, z_start, _get(buf, j), s0 + j * k, k), None

    if full:
        carry, _ = lax.scan(body, carry, jnp.arange(full), reverse=True)
    return carry


def backward(step, params, z0, dt, ct_zT, ct_saved, *, steps, save_every, anchors_, every, want_p, want_dt, tol):
    """Guarded reverse pass (module docstring). Returns (ct_z0, [ct_param for wanted leaves], ct_dt or None)."""
    bw = Backward(step, params, dt, ct_saved, save_every, want_p, want_dt, tol)
    carry = (list(ct_zT), tree_map(jnp.zeros_like, bw.wanted), jnp.zeros_like(dt))
    a, gp, gdt = over_segments(bw.checked(bw.replay), carry, list(z0), list(anchors_), 0, steps, every)
    return a, gp, (gdt if want_dt else None)
