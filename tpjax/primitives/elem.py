"""ELEM: dst = func(x[, y]) for the functions of ``ir.ops.ELEM_FUNCS`` (TP-IR op ``ELEM``).

Unary and binary functions act elementwise (binary ones broadcast like numpy); layout functions
(broadcast, reshape, convert) move data and carry static ``shape``/``bdims``/``dtype`` parameters; ``ipow``
carries its integer exponent ``n``. Derivatives are written in TP-IR primitives, so ``jax.grad`` of a
program of ELEMs is again a program of ELEMs and FMAs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

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
    arity = 2 if func in BINARY else 1
    if len(xs) != arity:
        raise TypeError(f"elem: {func!r} takes {arity} operand(s), got {len(xs)}")
    return elem_p.bind(*operands(*xs), func=func, **params)


_UNARY = {
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan, "exp": jnp.exp, "log": jnp.log, "sqrt": jnp.sqrt,
    "rsqrt": lax.rsqrt, "sq": lambda x: x * x, "neg": jnp.negative, "recip": lambda x: 1 / x,
    "tanh": jnp.tanh, "abs": jnp.abs, "sign": jnp.sign, "log1p": jnp.log1p, "expm1": jnp.expm1,
    "logistic": lax.logistic,
}  # fmt: skip
_BINARY = {
    "div": jnp.divide, "pow": jnp.power, "max": jnp.maximum, "min": jnp.minimum, "atan2": jnp.arctan2,
    "ge": lambda x, y: (x >= y),
}  # fmt: skip


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
    if func == "broadcast":
        return lax.broadcast_in_dim(xs[0], out.shape, p["bdims"])
    if func == "reshape":
        return jnp.reshape(xs[0], out.shape)
    if func == "convert":
        return lax.convert_element_type(xs[0], out.dtype)
    if func == "slice":
        return lax.slice(xs[0], p["start"], p["limit"])
    if func == "pad":
        return lax.pad(xs[0], np.zeros((), out.dtype), [(lo, hi, 0) for lo, hi in zip(p["lo"], p["hi"], strict=True)])
    if func == "ipow":
        y = lax.integer_pow(xs[0], p["n"])
    else:
        y = (_UNARY.get(func) or _BINARY[func])(*xs)
    return jnp.broadcast_to(lax.convert_element_type(y, out.dtype), out.shape)


# 5. JVP and transpose
def _d_unary(func, x, y, p):
    """dy/dx written in TP-IR primitives, or None when it is zero."""
    e = elem
    table = {
        "sin": lambda: e("cos", x),
        "cos": lambda: e("neg", e("sin", x)),
        "tan": lambda: fma(y, y, 1.0),
        "exp": lambda: y,
        "log": lambda: e("recip", x),
        "sqrt": lambda: fma(e("recip", y), 0.5),
        "rsqrt": lambda: fma(e("div", y, x), -0.5),
        "sq": lambda: fma(x, 2.0),
        "recip": lambda: e("neg", e("sq", y)),
        "tanh": lambda: fma(e("neg", y), y, 1.0),
        "abs": lambda: e("sign", x),
        "sign": lambda: None,
        "log1p": lambda: e("recip", fma(x, 1.0, 1.0)),
        "expm1": lambda: fma(y, 1.0, 1.0),
        "logistic": lambda: fma(y, fma(y, -1.0, 1.0)),
        "ipow": lambda: _d_ipow(x, p["n"]),
    }
    return table[func]()


def _d_ipow(x, n):
    if n == 0:
        return None
    if n == 1:
        return fma(x, 0.0, 1.0)
    return fma(x if n == 2 else elem("ipow", x, n=n - 1), float(n))


def _d_binary(func, a, b, y):
    e = elem
    if func == "div":
        return e("recip", b), e("neg", e("div", y, b))
    if func == "pow":
        return fma(b, e("pow", a, fma(b, 1.0, -1.0))), fma(e("log", a), y)
    if func in ("max", "min"):
        m = e("ge", a, b) if func == "max" else e("ge", b, a)
        return m, fma(m, -1.0, 1.0)
    if func == "atan2":
        r = fma(a, a, fma(b, b))
        return e("div", b, r), e("neg", e("div", a, r))
    return None, None  # ge: piecewise constant


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
    da, db = _d_binary(func, a, b, y)
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
