"""Map jaxpr equations to TP-IR instructions: one rule per JAX primitive; the rest become OPAQUE.

An OPAQUE instruction keeps the equation as traced and lets XLA run it (``dot_general`` in a neural
network H, control flow, custom_jvp functions...): a valid JAX Hamiltonian never fails to compile.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax
from jax.extend.core import Literal

from ..ir.elem_table import BY_JAX_NAME
from ..ir.ops import Op
from ..primitives._common import dtype_name
from .builder import Builder, literal_value

_ALIAS = ("copy", "copy_p", "tp_load", "tp_store", "optimization_barrier", "pvary")  # pvary: loops/ops cast
_INLINE = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint")


def _out(b: Builder, eqn, k: int = 0) -> str:
    return b.fresh(b.space)


def _fma(b, eqn, a, x, c):
    return b.emit(Op.FMA, _out(b, eqn), (a, x, c), aval=eqn.outvars[0].aval)


def _elem(b, eqn, func, *xs, **attrs):
    return b.emit(Op.ELEM, _out(b, eqn), xs, (("func", func), *attrs.items()), aval=eqn.outvars[0].aval)


#: jax primitive name -> rule(builder, eqn, operands) -> result operand(s). Identity in the comment.
RULES = {
    "mul": lambda b, e, x, y: _fma(b, e, x, y, 0.0),  # x*y       -> FMA x, y, 0
    "add": lambda b, e, x, y: _fma(b, e, x, 1.0, y),  # x+y       -> FMA x, 1, y
    "sub": lambda b, e, x, y: _fma(b, e, y, -1.0, x),  # x-y       -> FMA y, -1, x
    "add_any": lambda b, e, x, y: b.emit(Op.ACC_GRAD, _out(b, e), (x, y), aval=e.outvars[0].aval),
    "integer_pow": lambda b, e, x: (
        _elem(b, e, "sq", x) if e.params["y"] == 2 else _elem(b, e, "ipow", x, n=e.params["y"])
    ),  # x**2 -> ELEM sq;  x**n -> ELEM ipow n
    "reduce_sum": lambda b, e, x: b.emit(
        Op.SUM, _out(b, e), (x,), (("axis", tuple(e.params["axes"])),), aval=e.outvars[0].aval
    ),
    "broadcast_in_dim": lambda b, e, x: _broadcast(b, e, x),
    "reshape": lambda b, e, x: _elem(b, e, "reshape", x, shape=tuple(e.outvars[0].aval.shape)),
    "squeeze": lambda b, e, x: _elem(b, e, "reshape", x, shape=tuple(e.outvars[0].aval.shape)),
    "expand_dims": lambda b, e, x: _elem(b, e, "reshape", x, shape=tuple(e.outvars[0].aval.shape)),
    "slice": lambda b, e, x: _slice(b, e, x),  # unit-stride slice -> ELEM slice
    "pad": lambda b, e, x, v: _pad(b, e, x, v),  # zero padding -> ELEM pad
    "concatenate": lambda b, e, *xs: _concatenate(b, e, xs),  # concat -> sum of ELEM pads
    "convert_element_type": lambda b, e, x: _elem(b, e, "convert", x, dtype=np.dtype(e.params["new_dtype"]).name),
    # TP-IR primitives (they appear in the jaxprs of gradients of TP-IR programs)
    "tp_fma": lambda b, e, x, y, z: _fma(b, e, x, y, z),
    "tp_elem": lambda b, e, *xs: _elem(
        b, e, e.params["func"], *xs, **{k: v for k, v in e.params.items() if k != "func"}
    ),  # fmt: skip
    "tp_sum": lambda b, e, x: b.emit(
        Op.SUM, _out(b, e), (x,), (("axis", e.params["axes"]),), aval=e.outvars[0].aval
    ),  # fmt: skip
    "tp_acc_grad": lambda b, e, x, y: b.emit(Op.ACC_GRAD, _out(b, e), (x, y), aval=e.outvars[0].aval),
    "tp_grad_init": lambda b, e: b.emit(
        Op.GRAD_INIT, b.fresh("G"), (e.params["value"],), aval=e.outvars[0].aval
    ),  # fmt: skip
    "tp_poisson_j": lambda b, e, *xs: b.emit(
        Op.POISSON_J, b.fresh("F"), xs, (("type", e.params["kind"]),), aval=e.outvars[0].aval
    ),  # fmt: skip
    "tp_lie_cross": lambda b, e, x, y: b.emit(Op.LIE_CROSS, b.fresh("F"), (x, y), aval=e.outvars[0].aval),
    "tp_symp_step": lambda b, e, s, f, dt: _symp_step(b, e, s, f, dt),  # s + coef*dt*f -> FMA f, FMA(dt, coef, 0), s
}
for _name, _func in BY_JAX_NAME.items():  # f(x[, y]) -> ELEM f, x[, y]   (the registry's jaxpr names)
    RULES[_name] = lambda b, e, *xs, _f=_func: _elem(b, e, _f, *xs)


def _broadcast(b, eqn, x):
    aval = eqn.outvars[0].aval
    if not isinstance(x, str) and b.phase == "backward":  # a filled adjoint: GRAD_INIT g, v
        return b.emit(Op.GRAD_INIT, b.fresh("G"), (x,), aval=aval)
    return _elem(b, eqn, "broadcast", x, shape=tuple(aval.shape), bdims=tuple(eqn.params["broadcast_dimensions"]))


def _symp_step(b, eqn, s, f, dt):
    """SYMP_STEP as it appears in the jaxpr of a compiled step (and of its vjp): ``s + coef*dt*f`` as two FMAs
    (the TP-IR SYMP_STEP instruction updates its state register in place, which a traced jaxpr does not do)."""
    if len({v.aval.dtype for v in eqn.invars}) != 1:  # a mixed-precision step converts f: keep it as traced
        return _opaque(b, eqn, [s, f, dt])
    aval = eqn.outvars[0].aval
    scaled = b.emit(Op.FMA, _out(b, eqn), (dt, float(eqn.params["coef"]), 0.0), aval=eqn.invars[2].aval)
    return b.emit(Op.FMA, _out(b, eqn), (f, scaled, s), aval=aval)


def _ints(xs) -> tuple:
    return tuple(int(x) for x in xs)


def _slice(b, eqn, x):
    strides = eqn.params.get("strides")
    if strides is not None and any(int(s) != 1 for s in strides):
        return _opaque(b, eqn, [x])
    return _elem(b, eqn, "slice", x, start=_ints(eqn.params["start_indices"]), limit=_ints(eqn.params["limit_indices"]))


def _pad(b, eqn, x, v):
    cfg = eqn.params["padding_config"]
    if isinstance(v, str) or v != 0 or any(int(c[2]) != 0 or int(c[0]) < 0 or int(c[1]) < 0 for c in cfg):
        return _opaque(b, eqn, [x, v])
    return _elem(b, eqn, "pad", x, lo=_ints(c[0] for c in cfg), hi=_ints(c[1] for c in cfg))


def _concatenate(b, eqn, xs):
    """concatenate(x_1..x_n) = sum_i pad(x_i) with x_i's window at its offset (one ELEM pad per operand)."""
    dim, out = eqn.params["dimension"], eqn.outvars[0].aval
    if any(not isinstance(x, str) for x in xs):
        return _opaque(b, eqn, list(xs))
    total, offset, acc = out.shape[dim], 0, None
    for x, v in zip(xs, eqn.invars, strict=True):
        n = v.aval.shape[dim]
        lo = tuple(offset if k == dim else 0 for k in range(out.ndim))
        hi = tuple(total - offset - n if k == dim else 0 for k in range(out.ndim))
        padded = b.emit(Op.ELEM, b.fresh(b.space), (x,), (("func", "pad"), ("lo", lo), ("hi", hi)), aval=out)
        acc = padded if acc is None else b.emit(Op.FMA, b.fresh(b.space), (padded, 1.0, acc), aval=out)
        offset += n
    return acc


def _opaque(b: Builder, eqn, args):
    """Keep ``eqn`` as traced; XLA runs it. Literal operands stay literals of their own dtype (the
    callable casts each one to the dtype its operand has in the jaxpr: ``lt(x, 0.0)`` with x float32 gets
    a float32 0, whatever dtype the result has). Results may be booleans or integers; an equation with
    no results (``jax.debug.print``) or with effects is kept by DCE (attribute ``effect=True``)."""
    prim, params = eqn.primitive, dict(eqn.params)
    in_dtypes = tuple(v.aval.dtype for v in eqn.invars)
    reduced = _full_precision(params, in_dtypes)

    def run(*xs, _prim=prim, _params=params, _dtypes=in_dtypes):
        xs = [np.asarray(x, d) if isinstance(x, bool | int | float) else x for x, d in zip(xs, _dtypes, strict=True)]
        out = _prim.bind(*xs, **_prim.get_bind_params(_params))
        return tuple(out) if _prim.multiple_results else (out,)

    run.reduced_precision = reduced
    key = len(b.opaque)
    b.opaque.append(run)
    dsts = tuple(b.fresh(b.space) for _ in eqn.outvars)
    attrs = [("func", prim.name), ("key", key)]
    if len(dsts) != 1:
        attrs.append(
            ("types", tuple(f"{dtype_name(v.aval.dtype)}[{'x'.join(map(str, v.aval.shape))}]" for v in eqn.outvars))
        )  # fmt: skip  (one token each: f64[3x3])
    if eqn.effects or not dsts:
        attrs.append(("effect", True))
    first = eqn.outvars[0].aval if dsts else None
    b.emit(Op.OPAQUE, dsts, args, attrs, aval=first, dtype="none", comment="run by XLA (no TP-IR form)")
    return dsts if len(dsts) != 1 else dsts[0]


def _full_precision(params: dict, in_dtypes) -> bool:
    """A contraction (``dot_general``, a convolution) traced without a precision runs at the full precision
    of its dtype, as the fused kernels compute it (exact products and sums): on a GPU, XLA's default rounds
    float32 operands of a matmul to a shorter mantissa, so the two executors of one program differed by
    ~1e-4 (a float32 MLP H, H200) and the guarded gradient's rebuild from kernel states missed its check.
    An explicit request (``precision=`` on the call, or ``jax_default_matmul_precision``) is kept. Sets
    ``params["precision"]`` in place; returns whether a non-float64 contraction was asked for below full
    precision (then no fused kernel runs the program: they compute only at full precision)."""
    if "precision" not in params or all(np.dtype(d) == np.float64 for d in in_dtypes):
        return False
    asked, config = params["precision"], jax.config.jax_default_matmul_precision
    if asked is None and config is None:
        params["precision"] = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
        return False
    if asked is None:
        return config not in ("highest", "float32")
    pair = asked if isinstance(asked, tuple) else (asked, asked)
    return not all(x == lax.Precision.HIGHEST for x in pair)


def lower_jaxpr(b: Builder, jaxpr, consts, in_operands, *, adjoint_inputs=()) -> list:
    """Append the TP-IR of ``jaxpr`` to ``b``; returns the operands of its outputs.

    ``consts`` are the jaxpr's constant values (they become C registers), ``in_operands`` the registers
    bound to its inputs. In the backward phase, results that depend on an adjoint are G registers, the
    recomputed forward values T registers.
    """
    env: dict = {}
    adj: set = set(adjoint_inputs)

    def read(v):
        if isinstance(v, Literal):
            return literal_value(v.val)
        return env[v]

    for v, c in zip(jaxpr.constvars, consts, strict=True):
        env[v] = literal_value(c) if np.ndim(c) == 0 and not hasattr(c, "aval") and np.isscalar(c) else (
            b.const(c, v.aval))  # fmt: skip
    for v, x in zip(jaxpr.invars, in_operands, strict=True):
        env[v] = x
    for eqn in jaxpr.eqns:
        args = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        is_adj = b.phase == "backward" and any(isinstance(a, str) and a in adj for a in args)
        b.space = "G" if is_adj else "T"
        if name in _ALIAS:
            outs = args[: len(eqn.outvars)]
        elif name in _INLINE and "jaxpr" in eqn.params:
            sub = eqn.params["jaxpr"]
            outs = lower_jaxpr(b, sub.jaxpr, sub.consts, args, adjoint_inputs=adj)
        elif name in RULES and _tpir_types(eqn):
            outs = RULES[name](b, eqn, *args)
        else:
            outs = _opaque(b, eqn, args)
        outs = list(outs) if isinstance(outs, tuple | list) else [outs]
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = o
            if isinstance(o, str) and (is_adj or o.startswith("G")):
                adj.add(o)
    return [read(v) for v in jaxpr.outvars]


def _inexact(aval) -> bool:
    return np.issubdtype(np.dtype(aval.dtype), np.inexact)


def _tpir_types(eqn) -> bool:
    """TP-IR arithmetic is on floating values: an equation with a boolean or integer result (a comparison,
    index arithmetic) or operand (except the operand of a conversion to float) stays OPAQUE."""
    if not all(_inexact(v.aval) for v in eqn.outvars):
        return False
    return eqn.primitive.name == "convert_element_type" or all(_inexact(v.aval) for v in eqn.invars)
