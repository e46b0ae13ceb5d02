"""Common subexpression elimination by value numbering over a non-SSA program.

Every definition of a register gets a fresh version, so ``SYMP_STEP S1, ...`` (an in-place update)
invalidates every expression that read the old S1. Pure ops only (FMA, ELEM, SUM, GRAD_INIT, ACC_GRAD,
POISSON_J, LIE_CROSS); LOAD, STORE, SYMP_STEP and OPAQUE are never merged. A repeated expression is
dropped and later reads are renamed to the first result, unless that register is redefined before one
of those reads.
"""

from __future__ import annotations

from ..ir.node import Instr, Program
from ..ir.ops import Op
from .rewrite import PURE, rename

#: ops whose two leading operands commute: FMA(a, b, c) = FMA(b, a, c);  ACC_GRAD(a, b) = ACC_GRAD(b, a)
COMMUTATIVE = {Op.FMA: 2, Op.ACC_GRAD: 2}


def _key(i: Instr, version: dict[str, int]) -> tuple:
    vals = [(a, version.get(a, 0)) if isinstance(a, str) else ("#", repr(float(a))) for a in i.args]
    n = COMMUTATIVE.get(i.op, 0)
    vals = sorted(vals[:n], key=repr) + vals[n:]
    return (i.op, tuple(vals), i.attrs, i.dtype, i.shape)


def cse(prog: Program) -> Program:
    # d = op(args) after r = op(args) (same operand versions)  ->  drop d, read r
    instrs = list(prog.instrs)
    version: dict[str, int] = {}
    table: dict[tuple, tuple[str, int]] = {}
    counter, n = 0, 0
    while n < len(instrs):
        i = instrs[n]
        key = _key(i, version) if i.op in PURE and len(i.dst) == 1 else None
        hit = table.get(key) if key is not None else None
        if hit is not None and version.get(hit[0]) == hit[1] and rename(instrs, n, hit[0]):
            del instrs[n]
            continue
        if i.op is not Op.STORE:
            for d in i.dst:
                counter += 1
                version[d] = counter
        if key is not None:
            table[key] = (i.dst[0], version[i.dst[0]])
        n += 1
    return prog.with_instrs(instrs)
