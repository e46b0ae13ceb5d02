"""Element-wise symbolic evaluation of a jaxpr: prove the *form* of a function from its structure.

Numeric probes of a user's function (evaluate H or J at a few points) say nothing once its parameters are
traced (under jit, grad or vmap), and they can be fooled at a concrete point. Instead the jaxpr is run on
symbolic elements: every array becomes a numpy object array whose entries are elements of an *algebra*
(``Algebra``), one per array entry. Layout ops (slices, reshapes, stacks, gathers with constant indices...)
are run on integer ids, so each output entry is exactly the input entry it copies; arithmetic acts on the
elements; values that are concrete (literals, H's concrete constants and ops on them) are computed.

Two algebras use it (``forms.py``): the monomial supports of ``polynomial_support`` (is H = sum_i c_i
L_i^2 + const?, for the rigid-body splitting) and the linear combinations of ``proven_skew`` (is
J(z) + J(z)^T zero?, for a user's Poisson tensor).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.extend.core import Literal

#: layout primitives and the positions of their data operands (the others must be concrete).
LAYOUT = {
    "broadcast_in_dim": (0,), "reshape": (0,), "squeeze": (0,), "expand_dims": (0,), "slice": (0,),
    "transpose": (0,), "rev": (0,), "pad": (0, 1), "concatenate": None, "stack": None, "gather": (0,),
    "dynamic_slice": (0,), "dynamic_update_slice": (0, 1), "copy": (0,), "copy_p": (0,),
    "select_n": "cases",
}  # fmt: skip
#: element-wise arithmetic the algebras interpret.
_ARITH = ("add", "add_any", "sub", "neg", "mul", "div", "integer_pow", "square", "convert_element_type",
          "reduce_sum", "dot_general")  # fmt: skip
#: element-wise primitives: output entry i is a function of the input entries i alone.
ELEMENTWISE = frozenset(
    "sin cos tan exp exp2 log sqrt rsqrt cbrt tanh sinh cosh asin acos atan asinh acosh atanh logistic abs sign "
    "log1p expm1 erf erfc pow max min atan2 rem floor ceil round is_finite nextafter clamp select_n integer_pow "
    "convert_element_type eq ne lt le gt ge and or not".split()
)
_CALLS = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call")


#: arrays with more entries than this stop the evaluation (TooLarge): the analysis is for small forms.
MAX_SIZE = 4096


class TooLarge(Exception):
    """An array of the jaxpr is too large to evaluate entry by entry."""


class Algebra:
    """Elements of a symbolic evaluation. Subclasses give number/const/state elements and the rules."""

    def number(self, x):  # a concrete scalar
        raise NotImplementedError

    def const(self, k: int, index: int):  # entry ``index`` of H's k-th traced constant
        raise NotImplementedError

    def opaque(self, name: str, key, inputs: tuple):  # an op the algebra does not interpret
        raise NotImplementedError


def _elements(alg, x) -> np.ndarray:
    x = np.asarray(x)
    out = np.empty(x.shape, object)
    for i, v in np.ndenumerate(x):
        out[i] = alg.number(v.item())
    return out


def _concrete(v, env, concrete):
    if isinstance(v, Literal):
        return np.asarray(v.val)
    return concrete.get(v)


def evaluate(jaxpr, consts, inputs, alg: Algebra) -> list:
    """Run ``jaxpr`` on symbolic ``inputs`` (object arrays); ``consts`` are concrete arrays or None (traced).

    Returns the object arrays of its outputs.
    """
    env, concrete = {}, {}
    if any(np.prod(v.aval.shape, dtype=int) > MAX_SIZE for v in jaxpr.constvars):
        raise TooLarge
    for k, (v, c) in enumerate(zip(jaxpr.constvars, consts, strict=True)):
        if c is None:
            arr = np.empty(v.aval.shape, object)
            for j, idx in enumerate(np.ndindex(*v.aval.shape)):
                arr[idx] = alg.const(k, j)
            env[v] = arr
        else:
            concrete[v] = np.asarray(c)
            env[v] = _elements(alg, c)
    for v, x in zip(jaxpr.invars, inputs, strict=True):
        env[v] = x
    with jax.ensure_compile_time_eval():  # concrete ops and id layouts run eagerly, even inside a jit trace
        return _run(jaxpr, env, concrete, alg)


def _run(jaxpr, env, concrete, alg) -> list:
    def read(v):
        return _elements(alg, v.val) if isinstance(v, Literal) else env[v]

    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if any(np.prod(getattr(v.aval, "shape", ()), dtype=int) > MAX_SIZE for v in eqn.outvars):
            raise TooLarge
        vals = [_concrete(v, env, concrete) for v in eqn.invars]
        if all(c is not None for c in vals) and name not in _CALLS:
            out = eqn.primitive.bind(*vals, **eqn.params)
            outs = [np.asarray(o) for o in (out if eqn.primitive.multiple_results else [out])]
            for v, o in zip(eqn.outvars, outs, strict=True):
                concrete[v], env[v] = o, _elements(alg, o)
            continue
        args = [read(v) for v in eqn.invars]
        if name in _CALLS:
            sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr", eqn.params.get("fun_jaxpr")))
            inner = getattr(sub, "jaxpr", sub)
            sub_env = dict(zip(inner.invars, args, strict=True))
            sub_concrete = {iv: c for iv, c in zip(inner.invars, vals, strict=True) if c is not None}
            for cv, c in zip(inner.constvars, getattr(sub, "consts", ()), strict=True):
                sub_concrete[cv], sub_env[cv] = np.asarray(c), _elements(alg, c)
            outs = _run(inner, sub_env, sub_concrete, alg)
        elif name in LAYOUT:
            outs = _layout(eqn, args, vals, alg)
        elif name in _ARITH:
            outs = [_arith(eqn, args, vals, alg)]
        else:
            outs = None
        if outs is None:
            outs = _opaque(eqn, args, alg)
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = _obj(o)
    return [read(v) for v in jaxpr.outvars]


def _layout(eqn, args, vals, alg):
    """Run a layout op on integer ids: output entry = the input entry it copies (id 0 = exact zero)."""
    pos = LAYOUT[eqn.primitive.name]
    n = len(args)
    data = tuple(range(n)) if pos is None else tuple(range(1, n)) if pos == "cases" else pos
    if any(vals[k] is None for k in range(n) if k not in data):
        return None  # e.g. a gather whose indices depend on the state
    if eqn.primitive.name == "pad" and (vals[1] is None or float(vals[1]) != 0.0):
        return None
    table, operands = [alg.number(0.0)], []
    for k in range(n):
        if k in data and not (eqn.primitive.name == "pad" and k == 1):
            a = args[k]
            ids = np.arange(len(table), len(table) + a.size, dtype=np.int32).reshape(a.shape)
            table.extend(a.reshape(-1).tolist())
            operands.append(ids)
        elif eqn.primitive.name == "pad":
            operands.append(np.int32(0))
        else:
            operands.append(vals[k])
    params = dict(eqn.params)
    if "preferred_element_type" in params:
        params["preferred_element_type"] = None
    out = eqn.primitive.bind(*operands, **params)
    outs = out if eqn.primitive.multiple_results else [out]
    lookup = np.empty(len(table), object)
    lookup[:] = table
    return [lookup[np.asarray(o)] for o in outs]


def _obj(x) -> np.ndarray:
    """numpy returns 0-d object results as bare elements; wrap them back into arrays."""
    if isinstance(x, np.ndarray):
        return x
    out = np.empty((), object)
    out[()] = x
    return out


def _arith(eqn, args, vals, alg):
    out = _arith_raw(eqn, args, alg)
    return None if out is None else _obj(out)


def _arith_raw(eqn, args, alg):
    name, a = eqn.primitive.name, args[0]
    if name == "convert_element_type":
        return a if np.issubdtype(np.dtype(eqn.params["new_dtype"]), np.inexact) else None
    if name == "neg":
        return -a
    if name in ("add", "add_any"):
        return a + args[1]
    if name == "sub":
        return a + (-args[1])
    if name == "mul":
        return a * args[1]
    if name == "square":
        return a * a
    if name == "div":
        return np.vectorize(alg.divide, otypes=[object])(a, args[1])
    if name == "reduce_sum":
        axes = tuple(eqn.params["axes"])
        return a if not axes else _sum(a, axes, alg)
    if name == "dot_general":
        return _dot(a, args[1], eqn.params["dimension_numbers"], alg)
    n = eqn.params["y"]  # integer_pow
    if n < 1:
        return None
    out = a
    for _ in range(n - 1):
        out = out * a
    return out


def _sum(a, axes, alg):
    if any(a.shape[k] == 0 for k in axes):
        return np.full(tuple(n for k, n in enumerate(a.shape) if k not in axes), alg.number(0.0), object)
    return np.add.reduce(a, axis=axes)


def _dot(x, y, dims, alg):
    """dot_general on element arrays: a sum of products, as np.einsum on object arrays computes it."""
    (cx, cy), (bx, by) = dims
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sx, sy = [None] * x.ndim, [None] * y.ndim
    for i, j in zip(bx, by, strict=True):
        sx[i] = sy[j] = next(letters)
    for i, j in zip(cx, cy, strict=True):
        sx[i] = sy[j] = next(letters)
    for k in range(x.ndim):
        sx[k] = sx[k] or next(letters)
    for k in range(y.ndim):
        sy[k] = sy[k] or next(letters)
    free_x = [sx[k] for k in range(x.ndim) if k not in bx and k not in cx]
    free_y = [sy[k] for k in range(y.ndim) if k not in by and k not in cy]
    out = "".join([sx[k] for k in bx] + free_x + free_y)
    if x.size == 0 or y.size == 0 or any(x.shape[k] == 0 for k in cx):
        return None
    return _obj(np.einsum(f"{''.join(sx)},{''.join(sy)}->{out}", x, y, dtype=object))


def _opaque(eqn, args, alg):
    """Outputs of an op the algebra does not interpret: element-wise ops keep their entries' identity."""
    name = eqn.primitive.name
    key = (name, tuple(sorted((k, repr(v)) for k, v in eqn.params.items() if k not in ("jaxpr", "call_jaxpr"))))
    shapes = [tuple(v.aval.shape) for v in eqn.outvars]
    elementwise = name in ELEMENTWISE and len(shapes) == 1 and all(a.shape in (shapes[0], ()) for a in args)
    outs = []
    for j, shape in enumerate(shapes):
        out = np.empty(shape, object)
        for i in np.ndindex(*shape):
            if elementwise:
                out[i] = alg.opaque(name, key, tuple(np.broadcast_to(a, shape)[i] for a in args))
            else:
                out[i] = alg.opaque(name, (key, id(eqn), j, i), tuple(x for a in args for x in a.reshape(-1)))
        outs.append(out)
    return outs
