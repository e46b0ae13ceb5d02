"""``Event``: stop a run (per member) where ``cond_fn(t, state)`` changes sign, located by bisection.

The loop checks the sign of ``cond_fn`` after every step. At the first step whose end value has the
other sign (or is exactly 0) than the start value, that member stops (terminal events; masked under
``jax.vmap``: a stopped member's state no longer changes while the others run on). After the loop the
crossing is located inside that step by bisection on the step fraction theta in (0, 1]: the state at
``t_n + theta * dt`` is the integrator's own step of size ``theta * dt`` from the state at ``t_n``, so the
reported time is where the *numerical* solution crosses (to ~1e-13 relative to dt in float64). A start
exactly on the surface (``cond_fn = 0`` at t0) does not count as a crossing.

Events are forward-only: differentiating a run with an event raises (the event time depends on the state
in a way a fixed-length loop's derivative does not capture).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax


@dataclasses.dataclass(frozen=True)
class Event:
    """``cond_fn(t, state) -> scalar``; its sign change marks the event.

    ``terminal=True`` stops the member there (the final state is the state at the event time);
    ``terminal=False`` only records the first crossing time and runs on.
    """

    cond_fn: Callable
    terminal: bool = True

    def __post_init__(self):
        if not callable(self.cond_fn):
            raise TypeError(f"Event(cond_fn=...) must be a callable cond_fn(t, state), got {self.cond_fn!r}")
        if not isinstance(self.terminal, bool):
            raise TypeError(f"Event(terminal=...) must be True or False, got {self.terminal!r}")


@jax.custom_jvp
def _forward_only(x):
    return x


@_forward_only.defjvp
def _no_derivative(primals, tangents):
    raise NotImplementedError("tpjax: a run with event=... cannot be differentiated (the event time depends on "
                              "the state); differentiate a fixed-length run up to the event step instead")  # fmt: skip


def _crossed(g0, g1):
    return (g0 != 0) & (((g0 > 0) != (g1 > 0)) | (g1 == 0))


def run(event: Event, step, params, z0, dt, *, steps: int, n_parts: int, to_state, t_start, tick=None, chunk=1):
    """Run ``steps`` steps with ``event``; returns ``(z_final, happened, t_event)`` (t_event NaN if none)."""
    z0, dt, params = jax.tree.map(_forward_only, (tuple(z0), dt, tuple(params)))

    def g(t, z):
        v = jnp.asarray(event.cond_fn(t, to_state(z[:n_parts])))
        if v.shape != ():
            raise ValueError(f"Event cond_fn must return a scalar, got shape {v.shape}; reduce it, e.g. q[0]")
        return v

    def where(c, a, b):
        return tuple(jnp.where(c, x, y) for x, y in zip(a, b, strict=True))

    def one(carry, m):  # m: the global index of this step (unbatched)
        z, z_ev, g_prev, found, n_ev = carry
        live = (m < steps) & ~(found & event.terminal)
        z_new = step(params, z, dt)
        g_new = g(t_start + (m + 1) * dt, z_new)
        hit = live & ~found & _crossed(g_prev, g_new)
        z_ev, n_ev = where(hit, z, z_ev), jnp.where(hit, m, n_ev).astype(n_ev.dtype)
        found = found | hit
        adv = live & ~(found & event.terminal)
        return (where(adv, z_new, z), z_ev, jnp.where(adv, g_new, g_prev), found, n_ev), None

    def block(carry, i):
        def go(c):
            return lax.scan(one, c, i * chunk + jnp.arange(chunk))[0]

        done = jnp.all(carry[3]) if event.terminal else False
        carry = lax.cond(done, lambda c: c, go, carry)
        if tick is not None:
            tick(jnp.minimum((i + 1) * chunk, steps))
        return carry, None

    g0 = g(t_start, z0)
    init = (z0, z0, g0, jnp.zeros(g0.shape, bool), jnp.zeros(g0.shape, jnp.int32))
    (z, z_ev, _, found, n_ev), _ = lax.scan(block, init, jnp.arange(-(-steps // chunk)))

    t_n = t_start + n_ev * dt
    g_start = g(t_n, z_ev)
    iters = 60 if jnp.finfo(g_start.dtype).bits == 64 else 30

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        gm = g(t_n + mid * dt, step(params, z_ev, mid * dt))
        before = ~_crossed(g_start, gm)
        return jnp.where(before, mid, lo), jnp.where(before, hi, mid)

    one_ = jnp.ones_like(jnp.asarray(dt))
    _, theta = lax.fori_loop(0, iters, bisect, (0 * one_, one_))
    t_event = jnp.where(found, t_n + theta * dt, jnp.nan)
    if event.terminal:
        z = where(found, step(params, z_ev, theta * dt), z)
    return z, found, t_event
