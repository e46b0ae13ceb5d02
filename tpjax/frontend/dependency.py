"""Element-wise dependency analysis of a jaxpr: does any output element depend on an input?

The separability check asks whether dH/dq reads p. A coarse answer (any path from p to the output) rejects
separable H written on concatenations: for ``H = sum(concatenate([p, q])**2)`` the gradient is the q-window
of ``2 * concatenate([p, q])``, whose p-window is sliced away. Here every value carries a boolean *mask* of
its shape: which of its elements depend on the seed input. Layout and selection operations (slice, pad,
concatenate, reshape, broadcast, transpose, gather / scatter / dynamic slices with known indices,
select_n with a known predicate, reductions) move masks exactly, by running the operation itself on the 0/1
mask (every such operation is a selection or a sum of non-negative terms, so "non-zero" is exactly "reads a
dependent element"). Elementwise arithmetic ORs its operands' masks; ``dot_general`` marks each output that
any dependent element is contracted into. Everything else is conservative: one dependent element makes
every output element dependent. So the analysis may call a separable H non-separable, never the reverse.

Integer and boolean values that do not depend on the seed (indices, masks) are evaluated from literals and
known constants, so the selections that use them stay exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.extend.core import Literal

#: elementwise primitives (with numpy broadcasting for the TP-IR ones): an output element depends on the
#: operand elements at its position.
ELEMENTWISE = frozenset(
    """add sub mul div neg max min pow integer_pow square sqrt rsqrt cbrt exp exp2 log log1p expm1 sin cos tan
    tanh logistic sinh cosh asin acos atan asinh acosh atanh atan2 abs sign floor ceil round rem erf erfc erf_inv
    lgamma digamma is_finite nextafter select_n clamp convert_element_type copy copy_p lt le gt ge eq ne and or
    not xor stop_gradient add_any real imag conj reduce_precision optimization_barrier
    tp_fma tp_acc_grad tp_load tp_store""".split()
)
#: primitives that select or sum elements: evaluated on the 0/1 masks; value -> operand positions holding
#: indices or predicates (these need known values).
SELECTION = {
    "slice": (), "pad": (), "concatenate": (), "reshape": (), "squeeze": (), "expand_dims": (),
    "broadcast_in_dim": (), "transpose": (), "rev": (), "reduce_sum": (), "reduce_max": (), "reduce_min": (),
    "cumsum": (), "cummax": (), "tp_sum": (), "stack": (), "unstack": (), "split": (), "gather": (1,),
    "dynamic_slice": "1:", "dynamic_update_slice": "2:",
    "scatter-add": (1,), "scatter_add": (1,), "scatter": (1,), "select_n": (0,),
}  # fmt: skip
_LAYOUT_ELEM = ("broadcast", "reshape", "convert", "slice", "pad")
_SUBJAXPR = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call")
_MAX_EVAL = 1 << 16  # largest integer/boolean value evaluated for later index use


def depends(closed, seed: int, known: Mapping[int, Any] | None = None) -> bool:
    """Does any output of the ClosedJaxpr ``closed`` depend on its input number ``seed``?

    ``known`` maps input positions to concrete values (constants of H), used to evaluate indices.
    """
    jaxpr = closed.jaxpr
    if _largest(jaxpr) > _MAX_MASK:  # element masks would not fit: the variable-level (coarser) analysis
        return _reaches(jaxpr, {jaxpr.invars[seed]})
    masks = [np.zeros(v.aval.shape, bool) for v in jaxpr.invars]
    masks[seed] = np.ones(jaxpr.invars[seed].aval.shape, bool)
    values = {v: _concrete(x) for v, x in zip(jaxpr.constvars, closed.consts, strict=True)}
    for k, x in (known or {}).items():
        values[jaxpr.invars[k]] = _concrete(x)
    with jax.ensure_compile_time_eval():  # masks and indices are concrete, even when H is traced under jit
        outs = _run(jaxpr, masks, values)
    return any(bool(m.any()) for m in outs)


_MAX_MASK = 1 << 24  # elements: above this an element mask per value would cost too much memory


def _largest(jaxpr) -> int:
    avals = [v.aval for v in jaxpr.invars] + [v.aval for e in jaxpr.eqns for v in e.outvars]
    return max((int(np.prod(getattr(a, "shape", ()), dtype=np.int64)) for a in avals), default=0)


def _reaches(jaxpr, dep: set) -> bool:
    """Variable-level dependency: an equation with a dependent input makes all its outputs dependent
    (conservative: it never misses a dependency, but cannot see which elements of an array carry one)."""
    dep = set(dep)
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, jax.extend.core.Literal) and v in dep for v in eqn.invars):
            dep.update(eqn.outvars)
    return any(not isinstance(v, jax.extend.core.Literal) and v in dep for v in jaxpr.outvars)


def _concrete(x):
    return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _run(jaxpr, in_masks, values: dict) -> list:
    mask: dict = dict(zip(jaxpr.invars, in_masks, strict=True))

    def m(v):
        return np.zeros(np.shape(v.val), bool) if isinstance(v, Literal) else mask.get(v, np.zeros(v.aval.shape, bool))

    def val(v):
        return np.asarray(v.val) if isinstance(v, Literal) else values.get(v)

    for eqn in jaxpr.eqns:
        ins = [m(v) for v in eqn.invars]
        outs = _eqn(eqn, ins, [val(v) for v in eqn.invars], values)
        for v, o in zip(eqn.outvars, outs, strict=True):
            mask[v] = o
        if not any(i.any() for i in ins):
            _propagate_value(eqn, [val(v) for v in eqn.invars], values)
    return [m(v) for v in jaxpr.outvars]


def _everything(eqn, ins) -> list:
    hit = any(i.any() for i in ins)
    return [np.full(v.aval.shape, hit, bool) for v in eqn.outvars]


def _eqn(eqn, ins, vals, values) -> list:
    name, params = eqn.primitive.name, eqn.params
    if not any(i.any() for i in ins):
        return [np.zeros(v.aval.shape, bool) for v in eqn.outvars]
    if name in _SUBJAXPR:
        sub = params.get("jaxpr", params.get("call_jaxpr"))
        if sub is not None and hasattr(sub, "jaxpr") and len(sub.jaxpr.invars) == len(ins):
            inner = {v: _concrete(c) for v, c in zip(sub.jaxpr.constvars, sub.consts, strict=True)}
            inner |= {w: x for w, x in zip(sub.jaxpr.invars, vals, strict=True) if x is not None}
            return _run(sub.jaxpr, ins, inner)
        return _everything(eqn, ins)
    if name == "tp_elem" and params["func"] in _LAYOUT_ELEM:
        return _select(eqn, ins, vals, ())
    if name in ELEMENTWISE or name == "tp_elem":
        (out,) = eqn.outvars
        acc = np.zeros(out.aval.shape, bool)
        for i in ins:
            acc = acc | np.broadcast_to(i, out.aval.shape)
        return [acc]
    if name in SELECTION:
        idx = SELECTION[name]
        idx = range(int(idx[0]), len(ins)) if isinstance(idx, str) else idx
        return _select(eqn, ins, vals, tuple(idx))
    if name == "dot_general":
        return [_dot(eqn, ins)]
    return _everything(eqn, ins)


def _select(eqn, ins, vals, idx) -> list:
    """Run the selection/sum primitive on the 0/1 masks (indices and predicates: their known values)."""
    args = []
    for k, (v, i) in enumerate(zip(eqn.invars, ins, strict=True)):
        if k in idx:
            if i.any() or vals[k] is None:
                return _everything(eqn, ins)
            args.append(vals[k])
        else:
            args.append(i.astype(v.aval.dtype))
    out = eqn.primitive.bind(*args, **eqn.params)
    out = out if eqn.primitive.multiple_results else [out]
    return [np.asarray(o) != 0 for o in out]


def _dot(eqn, ins) -> np.ndarray:
    """Output elements that any dependent element is contracted into: dot(ma, 1) + dot(1, mb) > 0."""
    a, b = (v.aval for v in eqn.invars)
    ma, mb = (i.astype(np.float32) for i in ins)
    lhs = jax.lax.dot_general(ma, np.ones(b.shape, np.float32), eqn.params["dimension_numbers"])
    rhs = jax.lax.dot_general(np.ones(a.shape, np.float32), mb, eqn.params["dimension_numbers"])
    return np.asarray(lhs + rhs) != 0


def _propagate_value(eqn, vals, values) -> None:
    """Evaluate integer/boolean results (indices, predicates) that depend only on known values."""
    outs = eqn.outvars
    if not outs or any(x is None for x in vals) or eqn.primitive.name in _SUBJAXPR or eqn.effects:
        return
    if any(np.issubdtype(v.aval.dtype, np.inexact) or np.prod(v.aval.shape) > _MAX_EVAL for v in outs):
        return
    try:
        res = eqn.primitive.bind(*vals, **eqn.params)
    except Exception:  # a primitive that cannot run eagerly: its results stay unknown (conservative)
        return
    res = res if eqn.primitive.multiple_results else [res]
    for v, r in zip(outs, res, strict=True):
        values[v] = np.asarray(r)
