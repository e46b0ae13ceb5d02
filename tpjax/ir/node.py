"""Instructions and programs: immutable, hashable, comparable by value."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .ops import Op

Operand = str | float  # a register name, ``dt``, or a numeric constant


@dataclasses.dataclass(frozen=True)
class Instr:
    """One TP-IR instruction. Every instruction carries the dtype and shape of its result.

    ``dst`` is a tuple of register names (one, except OPAQUE ops with several results, and STORE whose
    destination is a memory pointer). ``attrs`` are static key/value pairs (hashable). ``phase`` is one of
    ``ops.PHASES`` and ``stage`` labels the method stage that the instruction belongs to.
    """

    op: Op
    dst: tuple[str, ...]
    args: tuple[Operand, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    dtype: str = "f32"
    shape: tuple[int, ...] = ()
    phase: str = "forward"
    stage: str = ""
    comment: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    def with_(self, **changes: Any) -> Instr:
        return dataclasses.replace(self, **changes)

    def type_of(self, reg: str) -> tuple[str, tuple[int, ...]]:
        """(dtype, shape) of result ``reg`` (OPAQUE ops with several results list theirs in ``types``, e.g.
        ``f64[3x3]``)."""
        types = self.attr("types")
        if types and reg in self.dst:
            t = types[self.dst.index(reg)]
            dtype, dims = t.split("[", 1)
            return dtype, tuple(int(x) for x in dims.rstrip("]").replace("x", ",").split(",") if x)
        return self.dtype, self.shape

    @property
    def regs_read(self) -> tuple[str, ...]:
        regs = tuple(a for a in self.args if isinstance(a, str) and a != "dt")
        return (self.dst[0], *regs) if self.op is Op.SYMP_STEP else regs


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A straight-line TP-IR program.

    ``opaque`` holds the callables of OPAQUE instructions (indexed by their ``name#k``); it is not part
    of the text, so equality compares it by identity. ``meta`` is the header (method, structure, ...).
    """

    instrs: tuple[Instr, ...]
    meta: tuple[tuple[str, str], ...] = ()
    opaque: tuple[Callable[..., Any], ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (
            self.instrs == other.instrs
            and self.meta == other.meta
            and len(self.opaque) == len(other.opaque)
            and all(a is b for a, b in zip(self.opaque, other.opaque, strict=True))
        )

    def __hash__(self) -> int:
        return hash((self.instrs, self.meta))

    def __len__(self) -> int:
        return len(self.instrs)

    def __str__(self) -> str:
        from .printer import to_text

        return to_text(self)

    __repr__ = __str__

    def with_instrs(self, instrs: tuple[Instr, ...] | list[Instr]) -> Program:
        return dataclasses.replace(self, instrs=tuple(instrs))

    def inputs(self) -> tuple[tuple[str, str], ...]:
        """(register, pointer) of every LOAD, in order."""
        return tuple((i.dst[0], i.args[0]) for i in self.instrs if i.op is Op.LOAD)

    def outputs(self) -> tuple[tuple[str, str], ...]:
        """(pointer, register) of every STORE, in order."""
        return tuple((i.dst[0], i.args[0]) for i in self.instrs if i.op is Op.STORE)

    def count(self, op: Op) -> int:
        return sum(1 for i in self.instrs if i.op is op)

    @property
    def fully_tpir(self) -> bool:
        """True when no instruction is OPAQUE (the whole program can go to a generated kernel)."""
        return self.count(Op.OPAQUE) == 0
