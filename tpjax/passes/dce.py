"""Dead-code elimination: drop instructions whose results no STORE needs.

The seed's forward (energy) phase is "not strictly necessary" for the flow: when only the state is
stored, this pass removes it.
"""

from __future__ import annotations

from ..ir.node import Program
from ..ir.ops import Op


def dce(prog: Program) -> Program:
    # DCE(i) -> drop i  when no STORE (transitively) reads any of i's results and i has no effect
    # (an OPAQUE marked effect=True, e.g. jax.debug.print, always stays)
    live: set[str] = set()
    keep = []
    for i in reversed(prog.instrs):
        if i.op is Op.STORE or any(d in live for d in i.dst) or i.attr("effect"):
            keep.append(i)
            if i.op is not Op.STORE:
                live.difference_update(i.dst)
            live.update(i.regs_read)
    return prog.with_instrs(tuple(reversed(keep)))
