"""FUSED_LOOP: ``n`` iterations of a traced loop body over an ensemble of lanes, as one primitive.

``fused_loop(body, carry, invariants, n, n_max=...)`` returns the carry after ``n`` (a traced int,
0 <= n <= n_max) iterations of ``carry = body(carry, invariants)``, where ``body`` works on ONE lane (one
system). Leading ``lanes`` axes of every carried value (and of the invariants marked per lane) are the
ensemble; the other invariants are shared by all lanes. On CUDA it lowers to the fused-loop Triton kernel
generated from the body (``frontend.loop_body`` + ``codegen.triton_loop``, in ``CUDA_LAUNCHERS``: every
value in registers, one launch for all iterations); wherever that kernel cannot be generated, and on every
other platform, to the reference: a ``lax.scan`` of ``n_max`` iterations masked past ``n`` (the same
arithmetic, transposable).

The gradients of the fused executors use it for their two loops: the anchored forward run (saving its anchors,
``save_every``) and the reversible backward sweep (``adjoint.guarded``). Its own derivatives are those of the
reference (JVP; reverse mode transposes that); ``jax.vmap`` adds a lane axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from ._cuda import register_lowerings
from ._sharding import like

fused_loop_p = Primitive("tp_fused_loop")
fused_loop_p.multiple_results = True


def fused_loop(body, carry, invariants, n=None, *, n_max: int, lanes: int = 0, lane_invariants=None,
               unroll: int = 1, inject=(), inject_into=(), inject_every=None, m0=None, inject_mode="add",
               save_every=None):  # fmt: skip
    """The carry after ``n`` iterations of ``body`` (see the module docstring); ``n=None``: exactly ``n_max``
    (no masking in the reference). ``body`` must be hashable (a frozen dataclass or a module-level
    function): it is a static parameter of the primitive. ``unroll``: of the reference's scan.

    Injection (the saved-state cotangents of a backward sweep): iteration i counts down the step index
    m = m0 - i; before the body runs, where m is a multiple of ``inject_every``, row m // inject_every - 1 of
    ``inject[j]`` (shape ``(rows, *lanes, *carry[k].shape[lanes:])``) is added to ``carry[inject_into[j]]``.
    ``inject_mode="anchor"`` (the re-anchored backward sweep): the row replaces ``carry[inject_into[j]]``
    instead, and the last two carried values (per lane, shape ``lanes``) record the miss: the largest
    |carried - row| over components and injections (``maximum``, which on the GPU may drop a NaN) and the
    sum of every |carried - row| (where a NaN or an Inf always shows).

    Saving (the anchored forward run): with ``save_every`` = k (``n=None``, no injection), the carry after
    iteration min((j + 1) k, n_max) is also returned, stacked: after the carry, one array per carried value
    of shape ``(ceil(n_max / k), *carry[i].shape)``, row j that state (lanes after the row axis). On CUDA the
    kernel writes each row as it passes it: one launch for the whole run."""
    carry, invariants, inject = list(carry), list(invariants), list(inject)
    lane_invariants = tuple(bool(x) for x in (lane_invariants or (False,) * len(invariants)))
    masked = n is not None
    n = jnp.asarray(n_max if n is None else n, jnp.int32)
    if len(inject) != len(inject_into) or (inject and inject_every is None):
        raise ValueError("fused_loop: one inject_into index per inject array, and inject_every with them")
    if inject_mode not in ("add", "anchor"):
        raise ValueError(f"fused_loop: inject_mode must be 'add' or 'anchor', got {inject_mode!r}")
    if inject_mode == "anchor" and (len(carry) < 3 or any(jnp.ndim(c) != lanes for c in carry[-2:])):
        raise ValueError("fused_loop: inject_mode='anchor' records into the last two carried values, one per lane")
    if save_every is not None and (masked or inject or int(save_every) < 1):
        raise ValueError("fused_loop: save_every (a positive int) runs exactly n_max iterations, without injection")
    extra = [*inject, jnp.asarray(m0, jnp.int32)] if inject else []
    out = fused_loop_p.bind(
        *carry,
        *invariants,
        *extra,
        n,
        body=body,
        nc=len(carry),
        n_max=int(n_max),
        lanes=int(lanes),
        lane_invariants=lane_invariants,
        masked=masked,
        unroll=max(1, min(int(unroll), int(n_max))),
        inject_into=tuple(int(k) for k in inject_into),
        inject_every=None if not inject else int(inject_every),
        inject_mode=inject_mode if inject else "add",
        save_every=None if save_every is None else int(save_every),
    )
    return list(out)


def split(ops, nc, inject_into):
    """(carry, invariants, inject arrays, m0 or None, n) of one equation's operands."""
    ni = len(inject_into)
    carry, rest, n = list(ops[:nc]), list(ops[nc:-1]), ops[-1]
    if not ni:
        return carry, rest, [], None, n
    return carry, rest[: len(rest) - ni - 1], rest[len(rest) - ni - 1 : -1], rest[-1], n


def _per_lane(body, lanes, lane_invariants):
    f = lambda c, v: list(body(list(c), list(v)))
    axes = [0 if lane else None for lane in lane_invariants]
    for _ in range(lanes):
        f = jax.vmap(f, in_axes=(0, axes))
    return f


# ---------------------------------------------------------------- reference
def _reference(*ops, body, nc, n_max, lanes, lane_invariants, masked, unroll, inject_into, inject_every,
               inject_mode, save_every):  # fmt: skip
    carry, inv, inj, m0, n = split(ops, nc, inject_into)
    if save_every is not None:
        return _saving_reference(carry, inv, body, n_max, lanes, lane_invariants, unroll, save_every)
    if n_max == 0:
        return carry
    f = _stepper(body, lanes, lane_invariants, unroll)

    def it(c, i):
        start = c
        if inj:  # as adjoint.guarded.Backward.pull
            m = m0 - i
            hit = m % inject_every == 0
            row = jnp.clip(m // inject_every - 1, 0, inj[0].shape[0] - 1)
            c = list(c)
            for x, k in zip(inj, inject_into, strict=True):
                add = lax.dynamic_index_in_dim(x, row, 0, False)
                if inject_mode == "add":
                    c[k] = c[k] + jnp.where(hit, add, jnp.zeros_like(add))
                    continue
                miss = jnp.abs(c[k] - add).reshape(*c[k].shape[:lanes], -1)
                c[-2] = jnp.where(hit, jnp.maximum(c[-2], jnp.max(miss, axis=-1)), c[-2])
                c[-1] = jnp.where(hit, c[-1] + jnp.sum(miss, axis=-1), c[-1])
                c[k] = jnp.where(hit, add, c[k])
        new = f(c, inv)
        return ([jnp.where(i < n, a, b) for a, b in zip(new, start, strict=True)] if masked else new), None

    out, _ = lax.scan(it, carry, jnp.arange(n_max, dtype=jnp.int32), unroll=unroll)
    return out


def _stepper(body, lanes, lane_invariants, unroll):
    f = _per_lane(body, lanes, lane_invariants)
    if unroll > 1 and jax.default_backend() == "cpu":  # as adjoint.loops.run: unrolled, each iteration's
        g = f  # arithmetic stays that of unroll 1 (a chaotic run's gradient is sensitive to its last bits)
        f = lambda c, v: lax.optimization_barrier(g(c, v))
    return f


def _saving_reference(carry, inv, body, n_max, lanes, lane_invariants, unroll, k):
    """The carry after n_max iterations and the stacked rows (``fused_loop``'s ``save_every``): a scan over
    segments of k iterations (each as a fused loop of k), the last one shorter, whose outputs are the rows."""
    f = _stepper(body, lanes, lane_invariants, unroll)

    def segment(c, length):
        c, _ = lax.scan(lambda c, _: (f(c, inv), None), c, None, length=length, unroll=max(1, min(unroll, length)))
        return c

    full, rem = divmod(n_max, k)
    out, rows = lax.scan(lambda c, _: (segment(c, k),) * 2, carry, None, length=full)
    if rem:
        out = segment(out, rem)
        rows = [jnp.concatenate([r, x[None]]) for r, x in zip(rows, out, strict=True)]
    return [*out, *rows]


def _abstract(*avals, nc, n_max, save_every, **_):
    out = [like(a, avals) for a in avals[:nc]]  # laid out like the carry (a mesh sharding, manual axes)
    if save_every is None:
        return out
    rows = -(-n_max // save_every)
    return out + [like(a, avals, shape=(rows, *a.shape), lead=1) for a in avals[:nc]]


def _jvp(primals, tangents, **params):
    ints = 2 if params["inject_into"] else 1  # m0 and n: integer operands, no tangents
    tangents = [ad.instantiate_zeros(t) for t in tangents[:-ints]]
    out = fused_loop_p.bind(*primals, **params)
    _, t_out = jax.jvp(lambda *xs: _reference(*xs, *primals[-ints:], **params), tuple(primals[:-ints]),
                       tuple(tangents))  # fmt: skip
    return out, list(t_out)


# ---------------------------------------------------------------- batching: one more lane axis
def _batch(args, dims, *, lanes, lane_invariants, **static):
    nc, inject_into = static["nc"], static["inject_into"]
    carry, inv, inj, m0, n = split(args, nc, inject_into)
    cd, vd, jd, md, nd = split(dims, nc, inject_into)
    if nd is not None or md is not None:  # a per-member trip count or start: the reference, vmapped
        f = jax.vmap(lambda *xs: _reference(*xs, lanes=lanes, lane_invariants=lane_invariants, **static),
                     in_axes=tuple(dims))  # fmt: skip
        out = f(*args)
        return out, [0] * len(out)
    size = next(x.shape[d] for x, d in zip(args, dims, strict=True) if d is not None)
    carry = [_front(x, d, size) for x, d in zip(carry, cd, strict=True)]
    new_inv, new_lane = [], []
    for x, d, lane in zip(inv, vd, lane_invariants, strict=True):
        if d is None and not lane:
            new_inv.append(x)  # shared by every lane, old and new
            new_lane.append(False)
            continue
        x = _front(x, d, size)
        if not lane and lanes:  # per new lane only: spread over the old lane axes
            lead = carry[0].shape[: lanes + 1]
            x = jnp.broadcast_to(x.reshape(size, *(1,) * lanes, *x.shape[1:]), (*lead, *x.shape[1:]))
        new_inv.append(x)
        new_lane.append(True)
    inj = [jnp.moveaxis(_front(x, d, size), 0, 1) for x, d in zip(inj, jd, strict=True)]  # (rows, lane, ...)
    extra = [*inj, m0] if inject_into else []
    out = fused_loop_p.bind(*carry, *new_inv, *extra, n, lanes=lanes + 1, lane_invariants=tuple(new_lane),
                            **static)  # fmt: skip
    return out, [0] * nc + [1] * (len(out) - nc)  # the saved rows: (rows, lane, ...)


def _front(x, d, size):
    if d is None:
        return jnp.broadcast_to(x, (size, *x.shape))
    return jnp.moveaxis(x, d, 0)


# ---------------------------------------------------------------- CUDA: the generated kernel
#: the kernel launcher, registered by ``tpjax.executors.fused_loop_kernel`` (a higher layer; imported with
#: ``tpjax.executors``): ``launch(ops, **params) -> outputs or None``
#: (None: no kernel for this body; the reference is lowered instead).
CUDA_LAUNCHERS: list = []
#: checks registered with the launchers: ``check(body, carry, invariants, lanes=, lane_invariants=, inject_into=,
#: inject_mode=)``
#: -> whether the CUDA lowering of such a loop is the generated kernel (True) or the reference (False).
CUDA_KERNEL_CHECKS: list = []


def has_cuda_kernel(body, carry, invariants, *, lanes: int, lane_invariants, inject_into=(), inject_mode="add") -> bool:
    """Whether ``fused_loop`` of these operands (arrays or avals, lane axes included) lowers for CUDA to the
    generated kernel: for callers that pick a loop structure by what the kernel covers."""
    return any(check(body, list(carry), list(invariants), lanes=lanes, lane_invariants=tuple(lane_invariants),
                     inject_into=tuple(inject_into), inject_mode=inject_mode)
               for check in CUDA_KERNEL_CHECKS)  # fmt: skip


def _cuda(*ops, **params):
    for launch in CUDA_LAUNCHERS:
        out = launch(ops, **params)
        if out is not None:
            return out
    return _reference(*ops, **params)


fused_loop_p.def_impl(lambda *a, **k: _reference(*a, **k))
fused_loop_p.def_abstract_eval(_abstract)
ad.primitive_jvps[fused_loop_p] = _jvp
batching.primitive_batchers[fused_loop_p] = _batch
register_lowerings(fused_loop_p, _reference, _cuda, multiple_results=True)
