"""First-same-as-last: one gradient evaluation per step for kick-first, kick-last splittings.

The closing kick of a step evaluates dH/dq at the step's final q, which is exactly the opening kick's
force of the next step (dH/dq of a separable H depends on q alone). The pass drops the opening gradient
block, LOADs the force from ``ptr_force`` instead and STOREs the closing force there; :func:`prologue`
gives the program that computes the force once before the first step.
"""

from __future__ import annotations

from ..ir.node import Instr, Program
from ..ir.ops import Op
from .carry import declare

FORCE = "ptr_force"


def _stages(prog: Program) -> list[str]:
    seen: list[str] = []
    for i in prog.instrs:
        if i.stage and i.stage not in seen:
            seen.append(i.stage)
    return seen


def _block(prog: Program, stage: str) -> tuple[list[Instr], str]:
    """The backward instructions of ``stage`` and the gradient register its POISSON_J reads."""
    body = [i for i in prog.instrs if i.stage == stage and i.phase == "backward"]
    (pj,) = [i for i in prog.instrs if i.stage == stage and i.op is Op.POISSON_J]
    return body, pj.args[0]


def _shape_of(block: list[Instr]) -> list:
    """The block up to register names (what must agree for first and last to be the same)."""
    return [(i.op, tuple(a if not isinstance(a, str) else a[0] for a in i.args),
             tuple(kv for kv in i.attrs if kv[0] != "key"), i.dtype, i.shape) for i in block]  # fmt: skip


def _is_kick(prog: Program, stage: str) -> bool:
    """A kick stage applies POISSON_J type=NEGATE (pdot = -dH/dq) to its gradient."""
    pj = [i for i in prog.instrs if i.stage == stage and i.op is Op.POISSON_J]
    return len(pj) == 1 and pj[0].attr("type") == "NEGATE"


def applicable(prog: Program) -> bool:
    st = _stages(prog)
    if len(st) < 2 or prog.count(Op.LOAD) == 0 or not (_is_kick(prog, st[0]) and _is_kick(prog, st[-1])):
        return False
    if any(i.dst == (FORCE,) for i in prog.instrs):
        return False
    (first, g0), (last, g_last) = _block(prog, st[0]), _block(prog, st[-1])
    if not any(g0 in i.dst for i in first) or not any(g_last in i.dst for i in last):
        return False  # a force the stage does not compute (dH/dq = 0 or a constant: a literal): nothing to carry
    return _shape_of(first) == _shape_of(last)


def fsal(prog: Program) -> Program:
    # kick(a) ... kick(b)  ->  LOAD G, ptr_force; kick(a) ... kick(b); STORE ptr_force, G'
    if not applicable(prog):
        return prog
    st = _stages(prog)
    first, g0 = _block(prog, st[0])
    _, g_last = _block(prog, st[-1])
    drop = set(map(id, first))
    n_loads = sum(1 for i in prog.instrs if i.op is Op.LOAD)
    ref = next(i for i in first if g0 in i.dst)
    load = Instr(Op.LOAD, (g0,), (FORCE,), (), *ref.type_of(g0), "backward", st[0],
                 "force carried from the last kick (FSAL)")  # fmt: skip
    last_ref = next(i for i in prog.instrs if g_last in i.dst)
    store = Instr(Op.STORE, (FORCE,), (g_last,), (), *last_ref.type_of(g_last), "integrate", "",
                  "force for the next step's first kick")  # fmt: skip
    body = [i for i in prog.instrs if id(i) not in drop]
    body = body[:n_loads] + [load] + body[n_loads:] + [store]
    return declare(Program(tuple(body), prog.meta + (("fsal", "1"),), prog.opaque), FORCE, "prologue")


def prologue(prog: Program) -> Program | None:
    """The program computing the first step's opening force (None when FSAL does not apply)."""
    if not applicable(prog):
        return None
    st = _stages(prog)
    first, g0 = _block(prog, st[0])
    ref = next(i for i in first if g0 in i.dst)
    loads = [i for i in prog.instrs if i.op is Op.LOAD]
    store = Instr(Op.STORE, (FORCE,), (g0,), (), *ref.type_of(g0), "integrate", "", "initial force")
    return Program(tuple(loads + first + [store]), prog.meta + (("program", "fsal_prologue"),), prog.opaque)
