"""ELEM: dst = func(x[, y]) for the functions of ``ir.ops.ELEM_FUNCS`` (TP-IR op ``ELEM``).

Unary and binary functions act elementwise (binary ones broadcast like numpy); layout functions
(broadcast, reshape, convert, slice, pad) move data and carry static parameters; ``ipow`` carries its integer
exponent ``n``. What each function computes and its derivative come from the registry ``ir.elem_table``; the
derivatives are written in TP-IR primitives, so ``jax.grad`` of a program of ELEMs is again a program of ELEMs
and FMAs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ..ir.elem_table import ELEM
from ..ir.ops import BINARY, ELEM_FUNCS, LAYOUT, UNARY
from ._common import (
    DTYPE_FROM_NAME,
    broadcast_batcher,
    broadcast_shapes,
    is_undefined,
    operands,
    result_dtype,
    scalar,
    shaped,
    unbroadcast,
    zero_tangent,
)
from ._sharding import typed
from .fma import broadcast_to, fma
from .sum import tp_sum

# 1. primitive
elem_p = Primitive("tp_elem")


# 2. public wrapper
def elem(func: str, *xs, **params):
    """Apply ELEM function ``func`` (e.g. ``elem("sin", x)``, ``elem("ipow", x, n=3)``,
    ``elem("broadcast", x, shape=(3,), bdims=())``)."""
    if func not in ELEM_FUNCS:
        raise ValueError(f"elem: unknown function {func!r}; expected one of {ELEM_FUNCS}")
    arity = ELEM[func].arity
    if len(xs) != arity:
        raise TypeError(f"elem: {func!r} takes {arity} operand(s), got {len(xs)}")
    return elem_p.bind(*operands(*xs), func=func, **params)


# 3. abstract eval
def _abstract(*xs, func, **p):
    if func == "broadcast":
        return shaped(p["shape"], xs[0].dtype)
    if func == "reshape":
        return shaped(p["shape"], xs[0].dtype)
    if func == "convert":
        return shaped(xs[0].shape, DTYPE_FROM_NAME.get(p["dtype"], p["dtype"]))
    if func == "slice":
        return shaped(tuple(b - a for a, b in zip(p["start"], p["limit"], strict=True)), xs[0].dtype)
    if func == "pad":
        return shaped(tuple(lo + n + hi for lo, n, hi in zip(p["lo"], xs[0].shape, p["hi"], strict=True)), xs[0].dtype)
    return shaped(broadcast_shapes(*(x.shape for x in xs)), result_dtype(*xs))


# 4. impl (the reference interpreter)
def _impl(*xs, func, **p):
    out = _abstract(*map(jax.typeof, xs), func=func, **p)
    if func in LAYOUT:
        return ELEM[func].jnp(xs[0], **(dict(p, dtype=out.dtype) if func == "convert" else p))
    y = ELEM[func].jnp(*xs, **p)
    return jnp.broadcast_to(lax.convert_element_type(y, out.dtype), out.shape)


# 5. JVP and transpose
class _TPOps:
    """The TP-IR ops the registry's derivative rules are written in."""

    elem = staticmethod(elem)
    fma = staticmethod(fma)


def _d_unary(func, x, y, p):
    """dy/dx written in TP-IR primitives, or None when it is zero."""
    return ELEM[func].deriv(_TPOps, x, y, p)


def _d_binary(func, a, b, y, p):
    """(dy/da, dy/db) written in TP-IR primitives (None where zero)."""
    return ELEM[func].deriv(_TPOps, a, b, y, p)


def _jvp(primals, tangents, *, func, **p):
    y = elem_p.bind(*primals, func=func, **p)
    if func in LAYOUT or func == "neg":
        (t,) = tangents
        if type(t) is ad.Zero:
            return y, zero_tangent(y)
        if func == "convert" and not jnp.issubdtype(y.dtype, jnp.inexact):
            return y, zero_tangent(y)
        return y, elem_p.bind(t, func=func, **p)
    if func in UNARY:
        (x,), (t,) = primals, tangents
        d = None if type(t) is ad.Zero else _d_unary(func, x, y, p)
        return y, (zero_tangent(y) if d is None else broadcast_to(fma(d, t), y.shape))
    (a, b), (ta, tb) = primals, tangents
    da, db = _d_binary(func, a, b, y, p)
    acc = None
    for d, t in ((db, tb), (da, ta)):
        if d is not None and type(t) is not ad.Zero:
            acc = fma(d, t, scalar(0, y.dtype) if acc is None else acc)
    return y, (zero_tangent(y) if acc is None else broadcast_to(acc, y.shape))


def _transpose(ct, x, *, func, **p):
    if type(ct) is ad.Zero:
        return [None]
    shape, dtype = x.aval.shape, x.aval.dtype
    if func == "neg":
        return [unbroadcast(elem("neg", ct), shape)]
    if func == "reshape":
        return [elem("reshape", ct, shape=shape)]
    if func == "convert":
        return [elem("convert", ct, dtype=np.dtype(dtype).name)]
    if func == "slice":  # slice^T = pad with zeros around the window
        hi = tuple(n - b for n, b in zip(shape, p["limit"], strict=True))
        return [elem("pad", ct, lo=tuple(p["start"]), hi=hi)]
    if func == "pad":  # pad^T = the window
        lim = tuple(lo + n for lo, n in zip(p["lo"], shape, strict=True))
        return [elem("slice", ct, start=tuple(p["lo"]), limit=lim)]
    # broadcast: sum over the new axes and over the operand's size-1 axes that were expanded
    dims = p["bdims"]
    new = tuple(i for i in range(ct.ndim) if i not in dims)
    grown = tuple(d for i, d in enumerate(dims) if shape[i] == 1 and ct.shape[d] != 1)
    s = tp_sum(ct, tuple(sorted(new + grown))) if new or grown else ct
    return [elem("reshape", s, shape=shape) if tuple(s.shape) != tuple(shape) else s]


def _transpose_rule(ct, *xs, func, **p):
    if not all(is_undefined(x) for x in xs) or func not in LAYOUT + ("neg",):
        raise ValueError(f"ELEM {func} is not linear; it has no transpose")
    return _transpose(ct, *xs, func=func, **p)


# 6. batching
_bcast_binary = broadcast_batcher(elem_p)
del batching.primitive_batchers[elem_p]


def _batch(args, dims, *, func, **p):
    if func in BINARY:
        return _bcast_binary(args, dims, func=func, **p)
    (x,), (d,) = args, dims
    if func in UNARY or func == "convert":
        return elem_p.bind(x, func=func, **p), d
    x = jnp.moveaxis(x, d, 0)
    if func == "slice":
        q = dict(p, start=(0, *p["start"]), limit=(x.shape[0], *p["limit"]))
    elif func == "pad":
        q = dict(p, lo=(0, *p["lo"]), hi=(0, *p["hi"]))
    else:
        q = dict(p, shape=(x.shape[0], *p["shape"]))
    if func == "broadcast":
        q["bdims"] = (0, *(i + 1 for i in p["bdims"]))
    return elem_p.bind(x, func=func, **q), 0


# 7. lowering: the reference through XLA.
# 8. registration
elem_p.def_impl(_impl)
elem_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.primitive_jvps[elem_p] = _jvp
ad.primitive_transposes[elem_p] = _transpose_rule
batching.primitive_batchers[elem_p] = _batch
mlir.register_lowering(elem_p, mlir.lower_fun(_impl, multiple_results=False))
