"""A program under construction: fresh registers, the OPAQUE table, the constants of H."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..ir.node import Instr, Program
from ..ir.ops import Op
from ..primitives._common import dtype_name


@dataclasses.dataclass
class Builder:
    instrs: list[Instr] = dataclasses.field(default_factory=list)
    opaque: list[Any] = dataclasses.field(default_factory=list)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    consts: list[Any] = dataclasses.field(default_factory=list)  # values of the C registers, in order
    const_regs: dict[int, str] = dataclasses.field(default_factory=dict)  # id(value) -> register
    phase: str = "forward"
    stage: str = ""
    space: str = "T"  # register space of the next result

    def fresh(self, space: str) -> str:
        n = self.counters.get(space, 0)
        self.counters[space] = n + 1
        return f"{space}{n}"

    def emit(self, op: Op, dst, args=(), attrs=(), *, aval=None, dtype=None, shape=None, comment=""):
        dst = (dst,) if isinstance(dst, str) else tuple(dst)
        if aval is not None:
            dtype, shape = dtype_name(aval.dtype), tuple(aval.shape)
        self.instrs.append(
            Instr(
                op,
                dst,
                tuple(args),
                tuple(attrs),
                dtype or "f32",
                tuple(shape or ()),
                self.phase,
                self.stage,
                comment,
            )  # fmt: skip
        )
        return dst[0] if len(dst) == 1 else dst  # an OPAQUE with no results returns ()

    def load(self, space: str, ptr: str, aval, comment: str = "") -> str:
        return self.emit(Op.LOAD, self.fresh(space), (ptr,), aval=aval, comment=comment)

    def const(self, value, aval) -> str:
        """A register holding a constant of H (a closed-over array or parameter), loaded once."""
        key = id(value)
        if key not in self.const_regs:
            k = len(self.consts)
            self.consts.append(value)
            reg = self.fresh("C")
            self.const_regs[key] = reg
            self.instrs.insert(
                self._load_end(),
                Instr(
                    Op.LOAD,
                    (reg,),
                    (f"ptr_c{k}",),
                    (),
                    dtype_name(aval.dtype),
                    tuple(aval.shape),
                    "forward",
                    "",
                    f"parameter {k} of H",
                ),  # fmt: skip
            )
        return self.const_regs[key]

    def _load_end(self) -> int:
        n = 0
        while n < len(self.instrs) and self.instrs[n].op is Op.LOAD:
            n += 1
        return n

    def program(self, meta=()) -> Program:
        return Program(tuple(self.instrs), tuple(meta), tuple(self.opaque))


def literal_value(x) -> float | int | bool:
    v = np.asarray(x)
    if v.shape != ():
        raise ValueError("only scalar literals are TP-IR operands")
    return v.item()
