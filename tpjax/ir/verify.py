"""Well-formedness of a TP-IR program: every read is defined before, ops have their arity and types."""

from __future__ import annotations

from .elem_table import ELEM
from .node import Program
from .ops import ELEM_FUNCS, PHASES, POISSON_TYPES, SPACES, Op

_ARITY = {
    Op.LOAD: (1, 1), Op.STORE: (1, 1), Op.FMA: (3, 3), Op.ELEM: (1, 2), Op.SUM: (1, 1),
    Op.GRAD_INIT: (1, 1), Op.ACC_GRAD: (2, 2), Op.POISSON_J: (1, 2), Op.SYMP_STEP: (2, 2),
    Op.LIE_CROSS: (2, 2), Op.OPAQUE: (0, 10**6),
}  # fmt: skip


class VerifyError(ValueError):
    """A malformed TP-IR program (the message names the instruction)."""


def _is_reg(name: str) -> bool:
    """A register: S/G/F/T/E/C + number. Not ``dt``: the run-time step is read, never written."""
    return name[:1] in SPACES and name[1:].isdigit()


def verify(prog: Program) -> Program:
    """Check ``prog`` and return it unchanged; raise :class:`VerifyError` naming the bad instruction."""
    defined: set[str] = set()
    for n, i in enumerate(prog.instrs, 1):
        where = f"instruction {n:02d} ({i.op.value})"
        lo, hi = _ARITY[i.op]
        if not lo <= len(i.args) <= hi:
            raise VerifyError(f"{where}: expected {lo}..{hi} operands, got {len(i.args)}")
        if i.phase not in PHASES:
            raise VerifyError(f"{where}: unknown phase {i.phase!r}")
        reads = () if i.op is Op.LOAD else i.regs_read
        for r in reads:
            if r not in defined:
                raise VerifyError(f"{where}: reads {r} before any instruction defines it")
        if i.op is Op.STORE:
            continue
        for d in i.dst:
            if not _is_reg(d):
                raise VerifyError(f"{where}: destination {d!r} is not a register (S/G/F/T/E/C + number)")
        defined.update(i.dst)
        if i.op is Op.ELEM and i.attr("func") not in ELEM_FUNCS:
            raise VerifyError(f"{where}: unknown ELEM function {i.attr('func')!r}")
        if i.op is Op.ELEM and len(i.args) != ELEM[i.attr("func")].arity:
            raise VerifyError(f"{where}: ELEM {i.attr('func')} takes {ELEM[i.attr('func')].arity} operand(s)")
        if i.op is Op.POISSON_J and i.attr("type") not in POISSON_TYPES:
            raise VerifyError(f"{where}: unknown POISSON_J type {i.attr('type')!r}")
        if i.op is Op.SYMP_STEP and (i.args[1] != "dt" or i.attr("coef") is None):
            raise VerifyError(f"{where}: SYMP_STEP takes (flow, c*dt) and updates its state in place")
        if i.op is Op.OPAQUE and not 0 <= i.attr("key", -1) < len(prog.opaque):
            raise VerifyError(f"{where}: OPAQUE key {i.attr('key')} has no callable in Program.opaque")
    return prog
