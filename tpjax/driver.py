"""The run driver behind ``trajectory`` / ``integrate``: save plans, observables, progress, events, resuming.

It composes the executors, it does not replace them: between two save points it runs the executor's own
loop (``XlaLoop.run_carry`` -- ``tpjax.adjoint.solve`` under the chosen adjoint -- or a fused kernel's
``run``), one ``lax.scan`` over save blocks per group of equal gaps, and applies ``SaveAt.fn`` to the state
at the end of each block, so observables stream without storing states. With no fn and no progress bar a
group is one executor call with ``save_every`` (the fused kernels write the saved states themselves).
The XLA loop state includes the carried registers (the FSAL force), which a Solution keeps in ``carry``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from . import events as ev
from . import progress as prog
from .executors import XlaLoop
from .saveat import SaveAt, plan
from .solution import Solution


class _Runner:
    """``advance(z, n)`` and ``advance_saving(z, count, every)`` for one executor, plus progress ticks."""

    def __init__(self, comp, executor, dt, adjoint, reanchor, tick, chunk, total):
        self.comp, self.ex, self.dt, self.kw = comp, executor, dt, {"adjoint": adjoint, "reanchor": reanchor}
        self.xla = isinstance(executor, XlaLoop)
        self.n = len(comp.structure.ptrs)
        self.tick, self.chunk, self.total = tick, chunk, total

    def start(self, parts, carry):
        return self.ex.start(self.comp, parts, carry) if self.xla else tuple(parts)

    def advance(self, z, n):
        if self.xla:
            return self.ex.run_carry(self.comp, z, self.dt, steps=n, check=False, **self.kw)[0]
        return self.ex.run(self.comp, z, self.dt, steps=n, **self.kw)[0]

    def advance_saving(self, z, count, every):
        if self.xla:
            return self.ex.run_carry(self.comp, z, self.dt, steps=count * every, save_every=every, check=False,
                                     **self.kw)  # fmt: skip
        return self.ex.run(self.comp, z, self.dt, steps=count * every, save_every=every, **self.kw)

    def segment(self, z, n, offset):
        """``n`` steps from step ``offset`` (an unbatched count), ticking the bar every ``chunk`` steps."""
        if self.tick is None:
            return self.advance(z, n)
        q, r = divmod(n, self.chunk)
        if q:

            def one(z, j):
                z = self.advance(z, self.chunk)
                self.tick(offset + (j + 1) * self.chunk)
                return z, None

            z, _ = lax.scan(one, z, jnp.arange(q))
        if r:
            z = self.advance(z, r)
            self.tick(offset + n)
        return z

    def check(self, z):
        if self.xla:
            self.ex.stepper(self.comp).check(z, self.dt)


def _save_blocks(r, z, count, gap, base, observe_at):
    """``count`` blocks of ``gap`` steps from step ``base``, observing after each: (z, observations stacked).

    ``observe_at(n, z)`` observes the loop state z at step n. With a bar and blocks shorter than its chunk,
    ``m`` blocks run between two ticks (the tick counter stays an unbatched scan index)."""
    m = 1 if r.tick is None or gap >= r.chunk else min(count, r.chunk // gap)

    def blocks(z, k, start):
        def one(z, i):
            z = r.segment(z, gap, start + i * gap) if m == 1 else r.advance(z, gap)
            return z, observe_at(start + (i + 1) * gap, z)

        return lax.scan(one, z, jnp.arange(k))

    if m == 1:
        return blocks(z, count, base)

    def outer(z, j):
        z, ys = blocks(z, m, base + j * m * gap)
        r.tick(base + (j + 1) * m * gap)
        return z, ys

    z, ys = lax.scan(outer, z, jnp.arange(count // m))
    ys = jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:]), ys)
    if count % m:
        start = base + (count // m) * m * gap
        z, rest = blocks(z, count % m, start)
        r.tick(start + (count % m) * gap)
        ys = _concat([ys, rest])
    return z, ys


def _time_last(y):
    """A scan-stacked per-save Casimir leaf (g, ..., 1) -> (..., g)."""
    y = jnp.moveaxis(y, 0, -1)
    return y.reshape(*y.shape[:-2], y.shape[-1])


def _concat(chunks, axis=0):
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *chunks)


def advance(comp, executor, parts, dt, *, steps, adjoint, reanchor, progress, carry=None):
    """``integrate``'s run with a progress bar or from a carry: (final parts, final carry or None)."""
    tick = prog.ticker(progress, steps)
    r = _Runner(comp, executor, dt, adjoint, reanchor, tick, prog.chunk(steps), steps)
    z = r.start(parts, carry)
    if steps:
        z = r.segment(z, steps, 0)
        r.check(z)
    return tuple(z[: r.n]), (tuple(z[r.n :]) if r.xla else None)


def simulate(comp, executor, parts, dt, *, steps, saveat: SaveAt, to_state, energy, adjoint, reanchor,
             progress=False, event=None, carry=None, t_start=0.0) -> Solution:  # fmt: skip
    """Run ``steps`` steps saving per ``saveat`` (and stopping at ``event``); the Solution of the run.

    ``to_state(parts)`` packs parts as the user's state; ``energy(parts)`` is H at one state.
    """
    st, dtype = comp.structure, parts[0].dtype
    tick = prog.ticker(progress, steps)
    r = _Runner(comp, executor, dt, adjoint, reanchor, tick, prog.chunk(steps), steps)
    z = r.start(parts, carry)
    t_start = jnp.asarray(t_start, dtype)
    happened = t_event = None
    fn = saveat.fn

    def observe(t, z):
        p = tuple(z[: r.n])
        if fn is None:
            return p
        return fn(t, to_state(p)), energy(p), st.casimirs(tuple(x[None] for x in p))

    if event is not None:
        if saveat.ts is not None or saveat.steps is not None:
            raise ValueError("with event=..., SaveAt may only set t0, t1 and fn (a run that stops early has no "
                             "fixed save grid); re-run trajectory up to the event time to save a path")  # fmt: skip
        stepper = executor.stepper(comp)
        z0 = z
        z, happened, t_event = ev.run(event, stepper.step, stepper.params, z0, dt, steps=steps, n_parts=r.n,
                                      to_state=to_state, t_start=t_start, tick=tick, chunk=r.chunk)  # fmt: skip
        r.check(z)
        stop = happened if event.terminal else jnp.zeros_like(happened)
        t_final = jnp.where(stop, t_event, t_start + steps * dt)
        picks = [(t_start, z0)] * saveat.t0 + [(t_final, z)] * saveat.t1
        ts = jnp.stack([jnp.broadcast_to(t, ()) for t, _ in picks]).astype(dtype)
        outs = [jax.tree.map(lambda x: x[None], observe(t, zz)) for t, zz in picks]
    else:
        pl = plan(saveat, steps, dt, t_start, dtype)
        outs, done = [], 0
        if pl.with_initial:
            outs.append(jax.tree.map(lambda x: x[None], observe(t_start, z)))
        for count, gap, saves in pl.groups:
            if not saves:
                z = r.segment(z, gap, done)
            elif fn is None and tick is None:
                z, saved = r.advance_saving(z, count, gap)
                outs.append(saved)
            else:
                z, ys = _save_blocks(r, z, count, gap, done, lambda n, z: observe(t_start + n * dt, z))
                outs.append(ys)
            done += count * gap
        if steps:
            r.check(z)
        ts = t_start + jnp.asarray(pl.indices, dtype) * dt
        t_final = t_start + steps * dt
    return _solution(comp, executor, outs, ts, z, r, fn, to_state, energy, steps, t_final, happened, t_event)


def _solution(comp, executor, outs, ts, z, r, fn, to_state, energy, steps, t_final, happened, t_event):
    st = comp.structure
    if not outs:
        raise ValueError("the SaveAt saves no step of this run")
    if fn is None:
        saved = _concat(outs)
        states, obs = to_state(saved), None
        energies, cas = jax.vmap(lambda *p: energy(p))(*saved), st.casimirs(saved)
    else:
        obs = _concat([o[0] for o in outs])
        energies = jnp.concatenate([o[1] for o in outs])
        cas = None if outs[0][2] is None else _concat([jax.tree.map(_time_last, o[2]) for o in outs], axis=-1)
        states = None
    return Solution(ts, states, energies, cas, obs, to_state(tuple(z[: r.n])), t_final,
                    tuple(z[r.n :]) if r.xla else None, happened, t_event, executor.name, comp.method.name,
                    steps)  # fmt: skip


def resume(state):
    """(state, carry, t_start) for a fresh state or a Solution to continue from."""
    if isinstance(state, Solution):
        if state.final is None:
            raise ValueError("this Solution has no final state to continue from")
        return state.final, (state.carry, state.method), state.t_final
    return state, None, 0.0


def carry_for(carry, comp, executor, parts):
    """The carried registers to start from: the Solution's, when they fit this run's loop."""
    if carry is None or carry[0] is None or not isinstance(executor, XlaLoop):
        return None  # a fused kernel's Solution, or a kernel run: the kernel starts from the state
    regs, method = carry
    if method != comp.method.name:
        raise ValueError(f"the Solution was computed with method={method!r}, this run uses "
                         f"{comp.method.name!r}; continue with the same method or pass its final state "
                         "(sol.final) to start fresh")  # fmt: skip
    want = jax.eval_shape(lambda p: executor.start(comp, p)[len(p) :], parts)
    got = [(jnp.shape(x), jnp.result_type(x)) for x in regs]
    if got != [(w.shape, w.dtype) for w in want]:
        raise ValueError(f"the Solution's carried registers {got} do not fit this run's loop "
                         f"{[(w.shape, w.dtype) for w in want]} (another precision or backend); pass its final "
                         "state (sol.final) to start fresh")  # fmt: skip
    return regs
