"""Carried registers as program metadata: what a step LOADs and STOREs besides the state, and how it starts.

A pass that makes a step carry a register from one step to the next (the FSAL force, a Kahan compensation)
declares it with :func:`declare`; the executors read the declarations with :func:`carried` and never guess
from pointer names or stage labels. In the listing a declaration is a header entry
``carry=<ptr>:<init>`` where ``<init>`` is ``prologue`` (computed by the compiled prologue program before
the first step) or ``zeros:<state ptr>`` (zeros shaped like that state part).
"""

from __future__ import annotations

import dataclasses

from ..ir.node import Program

INITS = ("prologue", "zeros")


@dataclasses.dataclass(frozen=True)
class Carried:
    """One carried register: its pointer, how it starts, and (for ``zeros``) the state part it is shaped like."""

    ptr: str
    init: str
    like: str | None = None


def declare(prog: Program, ptr: str, init: str, like: str | None = None) -> Program:
    """``prog`` with the carried register ``ptr`` declared (``init`` in INITS; ``like`` for zeros)."""
    if init not in INITS or (init == "zeros") != (like is not None):
        raise ValueError(f"carried register {ptr}: init must be 'prologue' or 'zeros' with a state pointer")
    value = f"{ptr}:{init}" + (f":{like}" if like else "")
    return Program(prog.instrs, prog.meta + (("carry", value),), prog.opaque)


def carried(prog: Program) -> tuple[Carried, ...]:
    """The carried registers ``prog`` declares, in declaration order."""
    out = []
    for k, v in prog.meta:
        if k == "carry":
            ptr, init, *like = v.split(":")
            out.append(Carried(ptr, init, like[0] if like else None))
    return tuple(out)
