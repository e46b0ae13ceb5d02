"""so(3)*: the Lie-Poisson tensor [L]x as a cross product, and an arithmetic cost model.

``POISSON_J f, g, L, type=LIE`` is f = [L]x g written as a 3x3 matrix product (9 mul + 6 add per
system); ``LIE_CROSS f, L, g`` computes the same L x g with 6 mul + 3 sub.
"""

from __future__ import annotations

import math
from collections import Counter

from ..ir.elem_table import ELEM
from ..ir.node import Instr, Program
from ..ir.ops import Op
from .rewrite import Ctx, apply_rules, is_num


def lie(i: Instr, ctx: Ctx):
    # POISSON_J(LIE, L, g) -> LIE_CROSS(L, g)      (args of POISSON_J: (g, L))
    if i.op is Op.POISSON_J and i.attr("type") == "LIE":
        g, L = i.args
        return i.with_(op=Op.LIE_CROSS, args=(L, g), attrs=())
    return None


RULES = (lie,)


def lie_cross(prog: Program) -> Program:
    return apply_rules(prog, RULES)


def _ipow_muls(n: int) -> int:
    n = abs(n)
    return max(n.bit_length() + bin(n).count("1") - 2, 0)  # square-and-multiply


def _cost(i: Instr, shapes: dict) -> dict:
    """Operation counts of ``i`` for one element of its result (per 3-vector for so(3) ops)."""
    op, a = i.op, i.args
    if op is Op.FMA:
        k = [x for x in a[:2] if is_num(x)]
        sign = -1.0 in k
        mul = 0 if (1.0 in k or sign) else 1
        if is_num(a[2]) and a[2] == 0:
            return {"mul": mul, "neg": int(sign and mul == 0)}
        return {"mul": mul, "sub" if sign and not mul else "add": 1}
    if op is Op.ACC_GRAD:
        return {"add": 1}
    if op is Op.SYMP_STEP:
        return {"mul": 1, "add": 1}
    if op is Op.LIE_CROSS:
        return {"mul": 6, "sub": 3}
    if op is Op.POISSON_J:
        kind = i.attr("type")
        if kind == "LIE":
            return {"mul": 9, "add": 6}
        if kind == "MATRIX":
            n = i.shape[-1] if i.shape else 1
            return {"mul": n, "add": n - 1}
        return {"neg": int(kind == "NEGATE")}
    if op is Op.SUM:
        src = shapes[a[0]]
        return {"add": max(math.prod(src) - math.prod(i.shape), 0)}
    if op is Op.ELEM:
        f = i.attr("func")
        if f == "ipow":
            return {"mul": _ipow_muls(i.attr("n"))}  # ipow always carries its exponent
        return dict(ELEM[f].cost)  # the registry's cost per element (verify admits registered functions only)
    if op is Op.OPAQUE:
        return {"opaque": 1}
    return {}


def arithmetic_count(prog: Program, phases: tuple[str, ...] | None = None) -> dict[str, int]:
    """Arithmetic of ``prog`` lowered for one system: counts of mul, add, sub, neg, div, func (calls of
    transcendental ELEM functions) and opaque, summed over result elements (LIE ops per 3-vector).
    ``phases`` restricts the count to those phases (e.g. ``("poisson",)`` for the flow alone).

    FMA(a, b, c): 1 mul unless a factor is the literal +-1, 1 add unless c is the literal 0 (a factor
    -1 makes it a sub, or a neg when c is 0). SYMP_STEP: 1 mul + 1 add (c*dt is one scalar per step).
    POISSON_J LIE: 9 mul + 6 add; LIE_CROSS: 6 mul + 3 sub; NEGATE: one sign flip per element.
    """
    shapes: dict[str, tuple] = {}
    total: Counter = Counter()
    for i in prog.instrs:
        if phases is None or i.phase in phases:
            per = _cost(i, shapes)
            n = math.prod(i.shape[:-1]) if i.op is Op.LIE_CROSS or i.attr("type") == "LIE" else None
            n = math.prod(i.shape) if n is None else n
            if i.op is Op.SUM:
                n = 1
            total.update({k: v * n for k, v in per.items() if v})
        if i.op is not Op.STORE:
            shapes.update((d, i.type_of(d)[1]) for d in i.dst)  # each result of a multi-result OPAQUE too
    return {k: total.get(k, 0) for k in ("mul", "add", "sub", "neg", "div", "func", "opaque")}
