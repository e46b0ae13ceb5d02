"""Algebraic simplification and constant folding.

A register defined by ``GRAD_INIT r, v`` is the uniform constant v; folded results become such
instructions and, where the consumer's dtype and result shape allow it, are substituted as literals (the
GRAD_INIT is then dead and DCE drops it). A copy is propagated only when the register has the same dtype
and shape as the one it replaces. ``x*0 -> 0`` assumes finite x, as every Hamiltonian gradient is.
"""

from __future__ import annotations

import numpy as np

from ..ir.elem_table import ELEM
from ..ir.node import Instr, Program
from ..ir.ops import Op
from .rewrite import Const, Copy, Ctx, apply_rules, in_dtype, is_num, np_dtype


def _num(value, dtype: str) -> float:
    """``value`` rounded to ``dtype``, as a Python float (exact for every float dtype)."""
    return in_dtype(lambda x: x, dtype, value)


def _fold(i: Instr, ctx: Ctx, f) -> Const | None:
    ks = [ctx.const(a) for a in i.args]
    if None in ks or "dt" in i.args:
        return None
    dt = np_dtype(i.dtype)
    with np.errstate(all="ignore"):
        return Const(_num(f(*(np.asarray(k, dt) for k in ks)), i.dtype))


def _shape(ctx: Ctx, a):
    return () if is_num(a) else (ctx.typeof(a) or (None, None))[1]


def fold_fma(i: Instr, ctx: Ctx):
    # FMA(k1, k2, k3) -> k1*k2 + k3
    return _fold(i, ctx, lambda a, b, c: a * b + c) if i.op is Op.FMA else None


def fold_acc(i: Instr, ctx: Ctx):
    # ACC_GRAD(k1, k2) -> k1 + k2
    return _fold(i, ctx, lambda a, b: a + b) if i.op is Op.ACC_GRAD else None


def fold_elem(i: Instr, ctx: Ctx):
    # ELEM f(k[, k2]) -> f(k[, k2])   (broadcast / reshape / convert of a constant too)
    if i.op is not Op.ELEM:
        return None
    f = ELEM.get(i.attr("func"))
    if f is None or f.fold is None:  # unknown, or pad: a padded constant is not a constant fill
        return None
    params = {k: v for k, v in i.attrs if k != "func"}
    return _fold(i, ctx, lambda *xs: f.fold(*xs, **params))


def literals(i: Instr, ctx: Ctx):
    # FMA / ACC_GRAD reading a constant register r = k  ->  read the literal k (same dtype and result shape)
    if i.op not in (Op.FMA, Op.ACC_GRAD):
        return None
    args = list(i.args)
    for n, a in enumerate(args):
        k = ctx.const(a) if isinstance(a, str) else None
        if k is None or (ctx.typeof(a) or ("",))[0] != i.dtype:
            continue
        shapes = [_shape(ctx, b) for m, b in enumerate(args) if m != n]
        if None not in shapes and tuple(np.broadcast_shapes((), *shapes)) == i.shape:
            args[n] = k
    return i.with_(args=tuple(args))


def order(i: Instr, ctx: Ctx):
    # FMA(k, x, c) -> FMA(x, k, c)   (a literal factor goes second: one form for CSE and the rules below)
    if i.op is Op.FMA and is_num(i.args[0]) and not is_num(i.args[1]):
        return i.with_(args=(i.args[1], i.args[0], i.args[2]))
    return None


def _copy(x, i: Instr, ctx: Ctx):
    """The result is ``x``: a copy of a register of the same type, else a uniform constant, else nothing."""
    if ctx.same_type(x, i):
        return Copy(x)
    k = ctx.const(x)
    return None if k is None else Const(_num(k, i.dtype))


def fma_identity(i: Instr, ctx: Ctx):
    if i.op is not Op.FMA:
        return None
    a, b, c = i.args
    if ctx.const(c) == 0 and (ctx.const(b) == 1 or ctx.const(a) == 1):
        return _copy(a if ctx.const(b) == 1 else b, i, ctx)  # FMA(x, 1, 0) -> x ;  FMA(1, x, 0) -> x
    if ctx.const(a) == 0 or ctx.const(b) == 0:
        return _copy(c, i, ctx)  # FMA(x, 0, c) -> c ;  FMA(0, x, c) -> c
    return None


def fma_neg(i: Instr, ctx: Ctx):
    if i.op is not Op.FMA or not is_num(i.args[1]) or not isinstance(i.args[0], str):
        return None
    x, k, c = i.args
    d, at = ctx.defn(x), ctx.def_index(x)
    if d is not None and d.op is Op.ELEM and d.attr("func") == "neg" and d.dtype == i.dtype:
        if ctx.intact(d.args, at) and isinstance(d.args[0], str):
            return i.with_(args=(d.args[0], -k, c))  # FMA(neg y, k, c) -> FMA(y, -k, c)
    if k == -1 and ctx.const(c) == 0 and ctx.same_type(x, i):
        return i.with_(op=Op.ELEM, args=(x,), attrs=(("func", "neg"),))  # FMA(x, -1, 0) -> neg x
    return None


def acc_identity(i: Instr, ctx: Ctx):
    if i.op is not Op.ACC_GRAD:
        return None
    a, b = i.args
    if ctx.const(b) == 0:
        return _copy(a, i, ctx)  # ACC_GRAD(x, 0) -> x   (0: a literal or a GRAD_INIT 0 register)
    if ctx.const(a) == 0:
        return _copy(b, i, ctx)  # ACC_GRAD(0, x) -> x
    return None


def elem_identity(i: Instr, ctx: Ctx):
    if i.op is not Op.ELEM:
        return None
    f, x = i.attr("func"), i.args[0]
    d = ctx.defn(x)
    if f == "neg" and d is not None and d.op is Op.ELEM and d.attr("func") == "neg":
        if ctx.intact(d.args, ctx.def_index(x)):
            return _copy(d.args[0], i, ctx)  # neg(neg y) -> y
    if f in ("broadcast", "reshape", "convert"):
        return _copy(x, i, ctx)  # broadcast / reshape / convert to its own type -> x
    if f == "ipow" and i.attr("n") in (1, 2):
        n2 = i.with_(attrs=(("func", "sq"),))  # ipow(x, 2) -> sq x ;  ipow(x, 1) -> x
        return n2 if i.attr("n") == 2 else _copy(x, i, ctx)
    if f == "div" and ctx.const(x) == 1 and ctx.same_type(i.args[1], i):
        return i.with_(args=(i.args[1],), attrs=(("func", "recip"),))  # div(1, y) -> recip y
    return None


def sum_identity(i: Instr, ctx: Ctx):
    # SUM x, axis=() -> x
    return _copy(i.args[0], i, ctx) if i.op is Op.SUM and not i.attr("axis") else None


RULES = (fold_fma, fold_acc, fold_elem, literals, order, fma_identity, fma_neg, acc_identity,
         elem_identity, sum_identity)  # fmt: skip


def simplify(prog: Program) -> Program:
    return apply_rules(prog, RULES)
