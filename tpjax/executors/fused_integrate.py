"""FUSED_INTEGRATE: a whole ensemble run, ``steps`` steps of a compiled method, as one primitive.

On CUDA it lowers to the fused multi-step Triton kernel generated from the TP-IR program
(codegen/triton.py: state and FSAL force in registers, only the final state -- and, with ``save_every``,
the saved states -- written); elsewhere, and for every derivative, to the reference path (the TP-IR
primitives in a lax.scan with the reversible adjoint). The primitive owns what triton_call lacks: batching
(vmap axes fold into the kernel's flat grid) and differentiation (JVP of the reference path; reverse mode
transposes that).

Operands: ``q, p, dt, *consts``. Static params: ``comp``, ``steps``, ``fast_math``, ``save_every``
(None or a positive int dividing ``steps``), and ``adjoint``, ``reanchor``: how the reference path (every
lowering but CUDA's, and every derivative) differentiates its loop. Results: ``[q_final, p_final]``
shaped like q, or with ``save_every`` ``[q_final, p_final, Q, P]`` where Q, P have shape
``(steps // save_every, *q.shape)`` and ``Q[k]`` is q after ``(k + 1) * save_every`` steps (the
initial state is not included; ``Q[-1] == q_final``). Under ``jax.vmap`` the saved outputs keep the
save axis first: their batch axis is 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from ..primitives._common import zero_tangent
from ..primitives._cuda import register_lowerings
from ..primitives._sharding import like
from .sharding import per_shard

# 1. primitive
fused_integrate_p = Primitive("tp_fused_integrate")
fused_integrate_p.multiple_results = True


# 2. public wrapper
def fused_integrate(comp, q, p, dt, consts=(), *, steps: int, fast_math: bool = False,
                    save_every: int | None = None, adjoint: str = "guarded",
                    reanchor: int | None = None):  # fmt: skip
    """Final (q, p) of every system of the ensemble (q, p: shape ``(..., *s)`` where ``s`` is comp's
    per-system shape, () or (d,); the leading dims are the ensemble); with
    ``save_every``, (q, p, Q, P): also the states after every ``save_every`` steps, Q, P of shape
    (steps // save_every, *q.shape)."""
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"fused_integrate: steps must be >= 0, got {steps}")
    if save_every is not None:
        from .. import _validate

        save_every = _validate.save_every(save_every, steps)  # a positive int dividing steps
    return fused_integrate_p.bind(q, p, dt, *consts, comp=comp, steps=steps, fast_math=bool(fast_math),
                                  save_every=save_every, adjoint=adjoint, reanchor=reanchor)  # fmt: skip


def _n_saves(steps, save_every):
    return steps // save_every


def _system_shape(comp, q, p) -> tuple[int, ...]:
    """The per-system shape comp was compiled for; q, p must be ``(..., *that)`` (leading dims: the
    ensemble)."""
    from ..codegen.triton import system_shape

    sys_shape = system_shape(comp)
    k = len(sys_shape)
    for name, x in (("q", q), ("p", p)):
        if len(x.shape) < k or tuple(x.shape[len(x.shape) - k :]) != sys_shape:
            raise ValueError(
                f"fused_integrate: {name} of shape {tuple(x.shape)} must end with the per-system shape "
                f"{sys_shape} comp was compiled for (leading dims are the ensemble)"
            )
    return sys_shape


# 3. abstract eval
def _abstract(q, p, dt, *consts, comp, steps, fast_math, save_every, adjoint, reanchor):
    _system_shape(comp, q, p)
    from .base import preflight

    preflight((q, p), steps, save_every)  # here the whole (vmapped) ensemble is visible
    ops = (q, p, dt, *consts)
    out = [like(q, ops), like(p, ops)]  # laid out like the state: a mesh sharding, shard_map's manual axes
    if save_every is not None:
        k = _n_saves(steps, save_every)
        out += [like(q, ops, shape=(k, *q.shape), lead=1), like(p, ops, shape=(k, *p.shape), lead=1)]
    return out


# 4. impl: the reference path, vmapped over the flattened leading (ensemble) dims
def _reference(q, p, dt, *consts, comp, steps, fast_math, save_every, adjoint="guarded", reanchor=None):
    from ..adjoint import solve
    from .loop_form import unroll_for

    # The FSAL carry stays (unlike the XLA executor on GPUs, for_xla): this path runs where the kernel does not
    # (every platform but CUDA, where XLA keeps it too) and in the gradient, whose loops are fused kernels on
    # CUDA: one force evaluation per step fewer there, and half the backward sweep's arithmetic.
    stepper = comp.method.stepper(comp)
    step = stepper.step
    unroll = unroll_for(comp, steps)

    def one(a, b):
        z0 = stepper.initial(tuple(consts), (a, b))
        if save_every is None:
            z = solve(step, z0, dt, tuple(consts), steps=steps, adjoint=adjoint, reanchor=reanchor, unroll=unroll,
                      fuse=True)  # fmt: skip
            return z[0], z[1]
        z, saved = solve(step, z0, dt, tuple(consts), steps=steps, save_every=save_every, adjoint=adjoint,
                         reanchor=reanchor, unroll=unroll, fuse=True)  # fmt: skip
        return z[0], z[1], saved[0], saved[1]

    q, p = jnp.asarray(q), jnp.asarray(p)  # (a Python-number state arrives here as a typed float under jvp)
    sys_shape = _system_shape(comp, q, p)
    qs, ps = q.reshape(-1, *sys_shape), p.reshape(-1, *sys_shape)  # (N, *system shape)
    if save_every is None:
        qf, pf = jax.vmap(one)(qs, ps)
        return [qf.reshape(q.shape), pf.reshape(p.shape)]
    k = _n_saves(steps, save_every)
    # saved per system: (k, *sys); the flat ensemble axis goes second -> (k, N, *sys) -> (k, *q.shape)
    qf, pf, sq, sp = jax.vmap(one, out_axes=(0, 0, 1, 1))(qs, ps)
    return [qf.reshape(q.shape), pf.reshape(p.shape), sq.reshape(k, *q.shape), sp.reshape(k, *p.shape)]


# 5. JVP: the reference path's (its reverse mode is the reversible adjoint); no transpose (not linear).
def _jvp(primals, tangents, **params):
    """The reference's JVP, primal included: under ``jax.grad`` its forward run (the guarded adjoint's anchored
    run, a fused loop) is the only one; the kernel would run the same steps a second time."""
    live = [k for k, t in enumerate(tangents) if type(t) is not ad.Zero]  # the rest stay symbolic zeros: no
    if not live:  # cotangent is accumulated for an undifferentiated parameter (or dt) in the backward sweep
        out = fused_integrate_p.bind(*primals, **params)
        return out, [zero_tangent(x) for x in out]

    def f(*xs):
        full = list(primals)
        for k, x in zip(live, xs, strict=True):
            full[k] = x
        return _reference(*full, **params)

    out, t_out = jax.jvp(f, tuple(primals[k] for k in live), tuple(tangents[k] for k in live))
    return list(out), list(t_out)


# 6. batching: batched (q, p) fold into the flat ensemble; a batched dt or parameter takes the reference.
# A sharded ensemble runs per shard (sharding.per_shard): each device's kernel sees only its members.
# The batch axis goes first in q, p; the saved outputs (save axis first) then carry it at axis 1.
def _batch(args, dims, **params):
    q, p, dt, *consts = args
    dq, dp, ddt, *dcs = dims
    saving = params["save_every"] is not None
    if ddt is not None or any(d is not None for d in dcs):
        f = jax.vmap(lambda *xs: tuple(_reference(*xs, **params)), in_axes=tuple(dims))
        out = list(f(*args))
        return out, [0] * len(out)
    size = q.shape[dq] if dq is not None else p.shape[dp]
    q = jnp.moveaxis(q, dq, 0) if dq is not None else jnp.broadcast_to(q, (size, *q.shape))
    p = jnp.moveaxis(p, dp, 0) if dp is not None else jnp.broadcast_to(p, (size, *p.shape))
    bind = lambda *xs: fused_integrate_p.bind(*xs, **params)
    saved = (False, False, True, True) if saving else (False, False)
    return per_shard(bind, [q, p], [dt, *consts], saved), [0, 0, 1, 1] if saving else [0, 0]  # sharding.py


# 7. lowerings: the reference through XLA everywhere; the generated Triton kernel on CUDA.
def _cuda(q, p, dt, *consts, comp, steps, fast_math, save_every, adjoint, reanchor):
    from ..codegen import triton as tg

    out = tg.fused_integrate(comp, q, p, dt, steps, fast_math=fast_math, consts=consts, save_every=save_every)
    return list(out)


# 8. registration
fused_integrate_p.def_impl(lambda *a, **k: _reference(*a, **k))
fused_integrate_p.def_abstract_eval(_abstract)
ad.primitive_jvps[fused_integrate_p] = _jvp
batching.primitive_batchers[fused_integrate_p] = _batch
register_lowerings(fused_integrate_p, _reference, _cuda, multiple_results=True)
