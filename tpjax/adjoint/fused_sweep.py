"""The two loops of a gradient as fused loops (``primitives.fused_loop``): on CUDA, generated Triton kernels.

Used when a solve asks for it (``solve(..., fuse=True)``, which the fused executors pass): the anchored
forward run (``run_saving``: ``StepBody``, one step per iteration, the anchors saved by the same loop) and
the reversible backward sweep of a guarded segment (``sweep``: ``SweepBody``, per iteration the state rebuilt
one step back, z <- step(z, -dt), and the cotangents pulled back through the step at it, as
``guarded.Backward.reversible`` does). The guard itself
(the rebuilt segment start against its anchor, the replay of a failing segment) stays where it is: the
kernel only replaces the loop, so the safety policy is unchanged.

The sweep works per lane: a state batched by ``jax.vmap`` (the step a ``loops.VmappedStep``) is a lane
axis of the kernel; a parameter (or dt) shared by the lanes gets per-lane cotangent partials, summed over the
lanes after the sweep. A trajectory's saved-state cotangents are added inside the sweep as it passes each
saved step (``fused_loop``'s injection). Steps that vmap twice (``jax.vmap`` of ``jax.grad`` of a vmapped
solve) and runs on a device mesh (``on_a_mesh``) keep the XLA loops, and so does the anchored forward run
of a saving solve whose anchor interval is not a multiple of ``save_every`` (a ``reanchor`` given so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..primitives.fused_loop import fused_loop, has_cuda_kernel
from . import loops
from .loops import VmappedStep


@dataclasses.dataclass(frozen=True)
class StepBody:
    """carry z -> step(params, z, dt); invariants (*params, dt)."""

    step: Callable

    def __call__(self, z, inv):
        return list(self.step(list(inv[:-1]), list(z), inv[-1]))


def on_a_mesh(*trees) -> bool:
    """Inside a mesh context (jit with a mesh set, shard_map) or with mesh-typed operands: the fused loops are
    not used there (their operands' shardings and manual axes would have to be threaded through the sweep's
    partial cotangents); the XLA loops, which do, run instead."""
    from ..primitives._sharding import meshy, varying

    if not jax.sharding.get_abstract_mesh().empty:
        return True
    avals = [jax.typeof(x) for x in jax.tree_util.tree_leaves(trees)]
    return any(meshy(a) for a in avals) or bool(varying(*avals))


def run(step, params, z, dt, n, unroll=1):
    """``loops.run`` as a fused loop (the same steps; ``loops.run`` itself on a mesh)."""
    if n == 0:
        return z
    if on_a_mesh(z, params, dt):
        return loops.run(step, params, z, dt, n, unroll)
    out = fused_loop(StepBody(step), list(z), [*params, dt], n_max=n, unroll=unroll)
    return tuple(out) if isinstance(z, tuple) else out


def run_saving(step, params, z, dt, n, every, unroll=1):
    """``n`` steps from ``z`` as ONE fused loop that also returns the states it passes every ``every`` steps
    (and the last): (z_n, rows), rows[j] = z_{min((j + 1) every, n)} stacked like z; or None on a mesh (the
    caller runs its segment loop). One launch instead of one per segment, the rows written by the kernel."""
    if on_a_mesh(z, params, dt):
        return None
    out = fused_loop(StepBody(step), list(z), [*params, dt], n_max=n, unroll=unroll, save_every=every)
    nz = len(out) // 2
    pack = tuple if isinstance(z, tuple) else list
    return pack(out[:nz]), pack(out[nz:])


@dataclasses.dataclass(frozen=True)
class SweepBody:
    """carry (z, a, gp, gdt) -> one step back: z <- step(z, -dt); (gp, a, gdt) += vjp of the step at z."""

    step: Callable
    nz: int
    want_p: tuple
    want_dt: bool

    def __call__(self, carry, inv):
        nz, nw = self.nz, sum(self.want_p)
        z, a, gp = carry[:nz], carry[nz : 2 * nz], carry[2 * nz : 2 * nz + nw]
        params, dt = list(inv[:-1]), inv[-1]
        z = list(self.step(params, z, -dt))

        def at(pw, zz, d):
            it = iter(pw)
            return list(self.step([next(it) if w else q for q, w in zip(params, self.want_p, strict=True)], zz, d))

        wanted = [p for p, w in zip(params, self.want_p, strict=True) if w]
        _, vjp = jax.vjp(at, wanted, z, dt)
        cp, a, cdt = vjp(list(a))
        out = [*z, *a, *(g + c for g, c in zip(gp, cp, strict=True))]
        return out + ([carry[-1] + cdt] if self.want_dt else [])


def _lanes(step):
    """(per-system step, lane count, per-parameter lane flags, dt lane flag), or None (nested vmaps)."""
    if not isinstance(step, VmappedStep):
        return step, 0, None, False
    if isinstance(step.step, VmappedStep):
        return None
    return step.step, 1, tuple(a == 0 for a in step.p_axes), step.dt_axis == 0


@dataclasses.dataclass(frozen=True)
class _Operands:
    """A vmapped step's sweep as fused-loop operands: the body, the carry (state, its cotangent, per-lane
    partial cotangents of the wanted parameters and of dt), the invariants and the lane bookkeeping."""

    body: SweepBody
    carry: list
    invariants: list
    lanes: int
    lane_invariants: tuple
    wanted_lane: list


def _operands(step, params, dt, carry, z_end, want_p, want_dt, *others):
    """``_Operands`` of a backward sweep from ``z_end``, or None where the fused loop does not apply (not a
    vmapped step, or an operand on a mesh; ``others``: more operands to check for the mesh)."""
    unwrapped = _lanes(step)
    if unwrapped is None or on_a_mesh(carry, z_end, params, dt, *others):
        return None
    inner, lanes, p_lane, dt_lane = unwrapped
    p_lane = p_lane if p_lane is not None else (False,) * len(params)
    a, gp, gdt = carry
    lead = tuple(z_end[0].shape[:lanes])
    wanted_lane = [lane for lane, w in zip(p_lane, want_p, strict=True) if w]
    # per-lane partial cotangents of shared parameters (and dt) start at 0; per-lane ones carry on
    part = [g if lane else jnp.zeros((*lead, *g.shape), g.dtype) for g, lane in zip(gp, wanted_lane, strict=True)]
    parts_dt = [gdt if dt_lane else jnp.zeros((*lead, *jnp.shape(gdt)), jnp.result_type(gdt))] if want_dt else []
    body = SweepBody(inner, len(z_end), tuple(want_p), bool(want_dt))
    return _Operands(body, [*z_end, *a, *part, *parts_dt], [*params, dt], lanes, (*p_lane, dt_lane), wanted_lane)


def _results(ops: _Operands, out, carry, nz, want_dt):
    """(rebuilt z, carry) from the fused loop's outputs ``out`` (laid out as ``ops.carry``): per-lane partials
    of shared parameters and dt summed over the lanes and added to the incoming ones."""
    _, gp, gdt = carry
    z, a = out[:nz], out[nz : 2 * nz]
    lane_axes = tuple(range(ops.lanes))
    gp_out = out[2 * nz : 2 * nz + len(gp)]
    gp = [o if lane else g + jnp.sum(o, axis=lane_axes) for g, o, lane in zip(gp, gp_out, ops.wanted_lane, strict=True)]
    if want_dt:
        gdt = out[-1] if ops.lane_invariants[-1] else gdt + jnp.sum(out[-1], axis=lane_axes)
    return z, (a, gp, gdt)


def sweep(step, params, dt, carry, z_end, n_active, n, want_p, want_dt, saved=None):
    """(rebuilt z_s, carry) after ``n_active`` (traced, <= n) backward steps from ``z_end``, or None when
    the fused loop does not apply (the caller runs its XLA loop). ``saved``: None, or (the saved-state
    cotangents, save_every, the index of the first step pulled back): each is added to the state's cotangent
    as the sweep passes its step, as ``guarded.Backward.pull`` does."""
    ops = _operands(step, params, dt, carry, z_end, want_p, want_dt)
    if ops is None:
        return None
    nz = len(z_end)
    inject = {}
    if saved is not None:
        ct_saved, save_every, m0 = saved
        inject = dict(inject=list(ct_saved), inject_into=tuple(range(nz, 2 * nz)), inject_every=save_every, m0=m0)
    out = fused_loop(ops.body, ops.carry, ops.invariants, n_active, n_max=n, lanes=ops.lanes,
                     lane_invariants=ops.lane_invariants, **inject)  # fmt: skip
    return _results(ops, out, carry, nz, want_dt)


@dataclasses.dataclass(frozen=True)
class AnchoredSweepBody:
    """``SweepBody`` with two more per-lane carried values passed through: the miss records that
    ``fused_loop``'s anchor injection fills where the sweep crosses a segment boundary (the worst
    max |rebuilt - true| and the sum of every |rebuilt - true|), so the step itself costs what a plain sweep
    step costs."""

    sweep: SweepBody

    def __call__(self, carry, inv):
        return [*self.sweep(carry[:-2], inv), *carry[-2:]]


def sweep_anchored(step, params, dt, carry, z_end, anchors, every, steps, want_p, want_dt):
    """All ``steps`` backward steps from ``z_end`` in one fused loop, restarting from ``anchors`` (slot j the
    true z_{min((j+1) every, steps)}) at every multiple of ``every``: (rebuilt z_0, carry, per-lane worst
    max |rebuilt - true| over the boundaries, per-lane sum of every |rebuilt - true|), or None where the fused
    loop does not apply (as ``sweep``) or its body has no CUDA kernel (a state too long for the loop
    kernels: the per-segment sweeps, whose body is shorter, may still have one)."""
    ops = _operands(step, params, dt, carry, z_end, want_p, want_dt, anchors)
    if ops is None:
        return None
    nz = len(z_end)
    body = AnchoredSweepBody(ops.body)
    record = jnp.zeros(tuple(z_end[0].shape[: ops.lanes]), jnp.result_type(*z_end))
    carry_in = [*ops.carry, record, record]
    anchored = dict(lanes=ops.lanes, lane_invariants=ops.lane_invariants, inject_into=tuple(range(nz)),
                    inject_mode="anchor")  # fmt: skip
    if not has_cuda_kernel(body, carry_in, ops.invariants, **anchored):
        return None  # no kernel for this body: the per-segment sweeps (one is no faster on the XLA loop)
    out = fused_loop(body, carry_in, ops.invariants, None, n_max=steps, inject=list(anchors), inject_every=every,
                     m0=steps, **anchored)  # fmt: skip
    return (*_results(ops, out[:-2], carry, nz, want_dt), out[-2], out[-1])
