"""A small rule engine for TP-IR passes on non-SSA programs.

A rule is ``rule(instr, ctx) -> Instr | Copy | Const | Edit | None``: a replacement instruction, "the
result equals this register" (drop the instruction, rename later reads), "the result is this uniform
constant" (becomes ``GRAD_INIT dst, v``), or an edit that also drops an earlier, now dead, instruction.
``ctx`` answers def/use questions at the instruction's position. Registers are *not* SSA: SYMP_STEP
updates its state in place, so every query looks for the latest definition before a position, and a
rename is refused when the replacement register is redefined before a read (or the renamed register is
the target of an in-place update).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from ..ir.node import Instr, Program
from ..ir.ops import Op

FLOATS = ("f16", "bf16", "f32", "f64")
PURE = (Op.FMA, Op.ELEM, Op.SUM, Op.GRAD_INIT, Op.ACC_GRAD, Op.POISSON_J, Op.LIE_CROSS)


@dataclasses.dataclass(frozen=True)
class Copy:
    reg: str  # the instruction's result equals ``reg``


@dataclasses.dataclass(frozen=True)
class Const:
    value: float  # the instruction's result is this uniform constant (of its dtype and shape)


@dataclasses.dataclass(frozen=True)
class Edit:
    new: tuple[Instr, ...]  # replaces the instruction
    drop: int  # index of an earlier instruction to delete (a single-use operand that moved)


def is_num(a) -> bool:
    return isinstance(a, int | float) and not isinstance(a, bool)


def np_dtype(name: str):
    from ..primitives._common import DTYPE_FROM_NAME

    return np.dtype(DTYPE_FROM_NAME.get(name, name))


def in_dtype(f, dtype: str, *values) -> float:
    """``f(*values)`` computed in numpy ``dtype`` (as the kernel would), as an exact Python float."""
    dt = np_dtype(dtype)
    with np.errstate(all="ignore"):
        return float(np.asarray(f(*(np.asarray(v, dt) for v in values))).astype(dt))


class Ctx:
    """Def/use queries for the instruction at ``pos`` of ``instrs``."""

    def __init__(self, instrs: list[Instr], pos: int):
        self.instrs, self.pos = instrs, pos

    def def_index(self, reg: str, before: int | None = None) -> int | None:
        for k in range((self.pos if before is None else before) - 1, -1, -1):
            if reg in self.instrs[k].dst and self.instrs[k].op is not Op.STORE:
                return k
        return None

    def defn(self, a) -> Instr | None:
        k = self.def_index(a) if isinstance(a, str) else None
        return None if k is None else self.instrs[k]

    def const(self, a) -> float | None:
        """The value of a numeric literal, or of a register defined by GRAD_INIT (a uniform constant)."""
        if is_num(a):
            return float(a)
        d = self.defn(a)
        return float(d.args[0]) if d is not None and d.op is Op.GRAD_INIT else None

    def typeof(self, a) -> tuple[str, tuple] | None:
        """(dtype, shape) of a register (None when unknown, e.g. one result of a multi-result OPAQUE)."""
        d = self.defn(a)
        return None if d is None or len(d.dst) != 1 else (d.dtype, d.shape)

    def same_type(self, a, i: Instr) -> bool:
        return isinstance(a, str) and self.typeof(a) == (i.dtype, i.shape)

    def end(self, k: int) -> int:
        """Index of the next redefinition of instrs[k]'s result (len(instrs) when none)."""
        (reg,) = self.instrs[k].dst
        for j in range(k + 1, len(self.instrs)):
            if reg in self.instrs[j].dst and self.instrs[j].op is not Op.STORE:
                return j
        return len(self.instrs)

    def readers(self, k: int) -> list[int]:
        """Indices reading the value defined at k (up to and including its redefinition)."""
        (reg,) = self.instrs[k].dst
        e = self.end(k)
        return [j for j in range(k + 1, min(e + 1, len(self.instrs))) if reg in self.instrs[j].regs_read]

    def single_use(self, a) -> int | None:
        """Index of ``a``'s definition when the instruction at pos is its only reader (once)."""
        k = self.def_index(a) if isinstance(a, str) else None
        if k is None or len(self.instrs[k].dst) != 1:
            return None
        reads = sum(r == a for j in self.readers(k) for r in self.instrs[j].regs_read)
        return k if reads == 1 and self.readers(k) == [self.pos] else None

    def intact(self, regs: Sequence, lo: int, hi: int | None = None) -> bool:
        """No register of ``regs`` is redefined strictly between lo and hi (default: pos)."""
        hi = self.pos if hi is None else hi
        names = {r for r in regs if isinstance(r, str) and r != "dt"}
        return not any(names & set(i.dst) for i in self.instrs[lo + 1 : hi] if i.op is not Op.STORE)


def rename(instrs: list[Instr], k: int, new: str) -> bool:
    """Make the reads of instrs[k]'s result read ``new`` instead; False (nothing changed) when unsafe."""
    ctx = Ctx(instrs, k)
    (old,) = instrs[k].dst
    reads = ctx.readers(k)
    for j in reads:
        if instrs[j].op is Op.SYMP_STEP and instrs[j].dst[0] == old:
            return False  # an in-place update of the renamed register
        if not ctx.intact([new], k, j):
            return False  # ``new`` holds another value by then
    for j in reads:
        i = instrs[j]
        instrs[j] = i.with_(args=tuple(new if a == old else a for a in i.args))
    return True


Rule = Callable[[Instr, Ctx], object]


def apply_rules(prog: Program, rules: Sequence[Rule], *, sweeps: int = 20) -> Program:
    """Apply ``rules`` (first match wins) at every instruction, sweeping until nothing changes."""
    instrs = list(prog.instrs)
    for _ in range(sweeps):
        changed, n = False, 0
        while n < len(instrs):
            advance, hit = _apply_at(instrs, n, rules)
            changed |= hit
            n += advance
        if not changed:
            break
    return prog.with_instrs(instrs)


def _apply_at(instrs: list[Instr], n: int, rules: Sequence[Rule]) -> tuple[int, bool]:
    """Rewrite instrs[n] until no rule fires; returns (how far to advance, whether anything changed)."""
    hit = False
    for _ in range(16):
        i = instrs[n]
        for rule in rules:
            out = rule(i, Ctx(instrs, n))
            if out is None or out == i:
                continue
            if isinstance(out, Copy):
                if out.reg == i.dst[0] or not rename(instrs, n, out.reg):
                    continue
                del instrs[n]
                return 0, True
            if isinstance(out, Edit):
                instrs[n : n + 1] = out.new
                del instrs[out.drop]
                return 1, True
            if isinstance(out, Const):
                out = i.with_(op=Op.GRAD_INIT, args=(out.value,), attrs=())
                if out == i:
                    continue
            instrs[n] = out
            hit = True
            break
        else:
            break
    return 1, hit
