"""Lower the canonical Poisson tensor J = [[0, I], [-I, 0]] to moves and signs, with no multiplies.

``POISSON_J PASS`` is a move: the SYMP_STEP reads the gradient directly, no instruction is left.
``POISSON_J NEGATE`` is folded into the coefficient of the SYMP_STEP that reads it:
``F = -g; SYMP_STEP s, F, c*dt  ->  SYMP_STEP s, g, -c*dt``. That costs nothing: the step multiplies
the flow by the scalar c*dt anyway, so -c*dt is the same one multiply, and the NEGATE instruction and
its n sign flips disappear (keeping NEGATE as a sign-flip kernel would cost one instruction per kick).
The same holds for a negation or a constant scaling feeding only a step (``SYMP_STEP s, k*x, c*dt ->
SYMP_STEP s, x, k*c*dt``). A NEGATE whose flow has another reader stays a NEGATE (a sign flip).
"""

from __future__ import annotations

from ..ir.node import Instr, Program
from ..ir.ops import Op
from .rewrite import Copy, Ctx, apply_rules, is_num


def poisson_pass(i: Instr, ctx: Ctx):
    # POISSON_J(PASS, g) -> g   (a move)
    if i.op is Op.POISSON_J and i.attr("type") == "PASS":
        return Copy(i.args[0])
    return None


def negate_neg(i: Instr, ctx: Ctx):
    # POISSON_J(NEGATE, neg x) -> POISSON_J(PASS, x)
    if i.op is not Op.POISSON_J or i.attr("type") != "NEGATE":
        return None
    k = ctx.def_index(i.args[0]) if isinstance(i.args[0], str) else None
    d = None if k is None else ctx.instrs[k]
    if d is not None and d.op is Op.ELEM and d.attr("func") == "neg" and ctx.intact(d.args, k):
        return i.with_(args=d.args, attrs=(("type", "PASS"),))
    return None


def _scale_of(d: Instr) -> tuple[object, float] | None:
    """(x, k) when ``d`` computes k*x with a literal k: POISSON_J NEGATE, ELEM neg, FMA(x, k, 0)."""
    if d.op is Op.POISSON_J and d.attr("type") == "NEGATE":
        return d.args[0], -1.0
    if d.op is Op.ELEM and d.attr("func") == "neg":
        return d.args[0], -1.0
    if d.op is Op.FMA and is_num(d.args[1]) and d.args[2] == 0 and isinstance(d.args[0], str):
        return d.args[0], float(d.args[1])
    return None


def step_scale(i: Instr, ctx: Ctx):
    # F = POISSON_J(NEGATE, g); SYMP_STEP s, F, c*dt  ->  SYMP_STEP s, g, -c*dt
    # SYMP_STEP s, neg x, c*dt -> SYMP_STEP s, x, -c*dt ;  SYMP_STEP s, FMA(x, k, 0), c*dt -> s, x, k*c*dt
    if i.op is not Op.SYMP_STEP:
        return None
    k = ctx.single_use(i.args[0])
    d = None if k is None else ctx.instrs[k]
    sx = None if d is None else _scale_of(d)
    if sx is None or not ctx.intact([sx[0]], k):
        return None
    x, scale = sx
    coef = i.attr("coef") * scale
    attrs = (("coef", coef),) + tuple(kv for kv in i.attrs if kv[0] != "coef")
    return i.with_(args=(x, "dt"), attrs=attrs)


RULES = (poisson_pass, negate_neg, step_scale)


def _comment(i: Instr) -> Instr:
    """Keep a step's ``p += c*dt*F`` comment in line with its operands."""
    if i.op is not Op.SYMP_STEP or " += " not in i.comment:
        return i
    return i.with_(comment=f"{i.comment.split(' += ')[0]} += {i.attr('coef'):g}*dt*{i.args[0]}")


def canonical(prog: Program) -> Program:
    out = apply_rules(prog, RULES)
    return out.with_instrs([_comment(i) for i in out.instrs])
