"""FMA fusion: a product used once feeds an addition or a constant scaling in one FMA.

The inner instruction must be read only by the outer one, with the same dtype, and its operands must
still hold the same values there (no SYMP_STEP in between redefines them); it is then dead (DCE drops
it, or the rule deletes it when it moves). Constant factors move outward through products and
broadcasts until they meet another constant (``2*q * (0.5*g) -> q*g``) or the flow, where the
``canonical`` pass folds them into the step coefficient.
"""

from __future__ import annotations

from ..ir.node import Instr, Program
from ..ir.ops import Op
from .rewrite import Ctx, Edit, apply_rules, in_dtype, is_num


def _inner(ctx: Ctx, t, i: Instr):
    """(index, instr) of ``t``'s definition when ``i`` may absorb it (single use, same dtype, intact)."""
    k = ctx.single_use(t)
    if k is None:
        return None, None
    d = ctx.instrs[k]
    if d.dtype != i.dtype or not ctx.intact(d.args, k):
        return None, None
    return k, d


def _as_fma(d: Instr | None) -> tuple | None:
    """(a, b, c) when ``d`` computes a*b + c: an FMA, or ELEM neg a = FMA(a, -1, 0)."""
    if d is not None and d.op is Op.ELEM and d.attr("func") == "neg" and isinstance(d.args[0], str):
        return d.args[0], -1.0, 0.0
    return d.args if d is not None and d.op is Op.FMA else None


def _sum_terms(i: Instr, ctx: Ctx):
    """x + y as (x, y) for FMA(x, 1, y), FMA(1, x, y) and ACC_GRAD(x, y)."""
    if i.op is Op.ACC_GRAD:
        return i.args
    if i.op is Op.FMA and (ctx.const(i.args[1]) == 1 or ctx.const(i.args[0]) == 1):
        x = i.args[0] if ctx.const(i.args[1]) == 1 else i.args[1]
        return x, i.args[2]
    return None


def fuse_add(i: Instr, ctx: Ctx):
    # t = FMA(a, b, 0); d = FMA(t, 1, c)  ->  d = FMA(a, b, c)      (and FMA(1, t, c), FMA(c, 1, t))
    # t = FMA(a, b, 0); d = ACC_GRAD(t, c) | ACC_GRAD(c, t)  ->  d = FMA(a, b, c)
    # t = FMA(a, b, k0); d = FMA(t, 1, k)  ->  d = FMA(a, b, k0 + k)
    terms = _sum_terms(i, ctx)
    if terms is None or ctx.const(terms[1]) == 0:
        return None
    for t, c in (terms, terms[::-1]):
        if not isinstance(t, str) or t == c:
            continue
        k, d = _inner(ctx, t, i)
        if _as_fma(d) is None:
            continue
        a, b, c0 = _as_fma(d)
        if ctx.const(c0) == 0:
            return i.with_(op=Op.FMA, args=(a, b, c))
        if is_num(c0) and is_num(c):
            return i.with_(op=Op.FMA, args=(a, b, in_dtype(lambda x, y: x + y, i.dtype, c0, c)))
    return None


def fuse_scale(i: Instr, ctx: Ctx):
    # t = FMA(a, k1, c0); d = FMA(t, k2, c)  ->  d = FMA(a, k1*k2, c0*k2 + c)   (c0 = 0, or c0 and c literals)
    # t = FMA(a, k, 0); d = ELEM neg t  ->  d = FMA(a, -k, 0)
    outer = _as_fma(i) if i.op in (Op.FMA, Op.ELEM) else None
    if outer is None or not is_num(outer[1]) or not isinstance(outer[0], str):
        return None
    t, k2, c = outer
    _, d = _inner(ctx, t, i)
    abc = _as_fma(d)
    if abc is None or not is_num(abc[1]):
        return None
    a, k1, c0 = abc
    k = in_dtype(lambda x, y: x * y, i.dtype, k1, k2)  # folded as the kernel would multiply them
    if ctx.const(c0) == 0:
        return i.with_(op=Op.FMA, args=(a, k, c), attrs=())
    if is_num(c0) and is_num(c):
        return i.with_(op=Op.FMA, args=(a, k, in_dtype(lambda x, y, z: x * y + z, i.dtype, c0, k2, c)), attrs=())
    return None


def pull_scale(i: Instr, ctx: Ctx):
    # t = FMA(a, k, 0); d = FMA(t, x, 0)  ->  t = FMA(a, x, 0); d = FMA(t, k, 0)   (x not a constant)
    # t = FMA(a, k, 0); d = ELEM broadcast(t)  ->  t = ELEM broadcast(a); d = FMA(t, k, 0)
    # (everywhere above, t = ELEM neg a counts as t = FMA(a, -1, 0))
    if i.op is Op.FMA and ctx.const(i.args[2]) == 0 and ctx.const(i.args[0]) is None:
        pairs = [(i.args[0], i.args[1]), (i.args[1], i.args[0])]
    elif i.op is Op.ELEM and i.attr("func") == "broadcast":
        pairs = [(i.args[0], None)]
    else:
        return None
    for t, x in pairs:
        if not isinstance(t, str) or (x is not None and (ctx.const(x) is not None or x == t)):
            continue
        k, d = _inner(ctx, t, i)
        abc = _as_fma(d)
        if abc is None or not is_num(abc[1]) or ctx.const(abc[2]) != 0 or not isinstance(abc[0], str):
            continue
        inner = i.with_(dst=d.dst, args=(abc[0], x, 0.0) if x is not None else (abc[0],), comment="")
        outer = i.with_(op=Op.FMA, args=(t, abc[1], 0.0), attrs=())
        return Edit((inner, outer), k)
    return None


RULES = (fuse_add, fuse_scale, pull_scale)


def fuse_fma(prog: Program) -> Program:
    return apply_rules(prog, RULES)
