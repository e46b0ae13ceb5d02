"""Mixed precision: gradient and Poisson phases in ``policy.grad``; state and SYMP_STEP in ``policy.step``.

Rules (``g`` = policy.grad, ``s`` = policy.step):
  # every backward / poisson instruction (not LOAD)        -> dtype g   (ELEM convert to a float -> to g)
  # a block reads r of another float dtype (state, C, force) -> T = ELEM convert r, dtype=g at block start
  # a non-step instruction outside the blocks reads a changed register -> convert back to its old dtype
  # SYMP_STEP, LOAD, STORE of the state                     -> unchanged (symp_step casts the flow to s)
The memory interface (every LOAD / STORE dtype) never changes, so a carried FSAL force stays in its
dtype (the step casts the flow to the state dtype before multiplying, so nothing is lost).

``compensated=True`` (Kahan): every ``SYMP_STEP s, f, c*dt`` becomes
  # Y = FMA(f, c*dt, E); S' = FMA(s, 1, Y); D = FMA(s, -1, S'); E' = FMA(D, -1, Y)   (E = -compensation)
with one compensation register per state part, LOADed from ``<ptr>_comp`` and STOREd back: the caller
carries it from step to step like the FSAL force (zeros at the start).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from ..ir.node import Instr, Program
from ..ir.ops import Op
from ..precision import Precision
from ..primitives._common import DTYPE_FROM_NAME, DTYPE_NAMES
from .carry import declare
from .rewrite import FLOATS

BLOCK = ("backward", "poisson")


def _fresh(instrs) -> Callable[[str], str]:
    top: dict[str, int] = {}
    for i in instrs:
        for r in (*i.dst, *(a for a in i.args if isinstance(a, str))):
            if r[1:].isdigit():
                top[r[0]] = max(top.get(r[0], -1), int(r[1:]))
    counters = {sp: itertools.count(n + 1) for sp, n in top.items()}

    def fresh(space: str) -> str:
        return f"{space}{next(counters.setdefault(space, itertools.count()))}"

    return fresh


def _convert(dst: str, src: str, dtype: str, like: Instr, shape) -> Instr:
    return Instr(Op.ELEM, (dst,), (src,), (("func", "convert"), ("dtype", DTYPE_FROM_NAME[dtype])), dtype,
                 tuple(shape), like.phase, like.stage, f"{src} in {dtype}")  # fmt: skip


def _promote_instr(i: Instr, g: str) -> Instr:
    if i.dtype not in FLOATS:
        return i
    attrs = i.attrs
    if i.op is Op.ELEM and i.attr("func") == "convert" and DTYPE_NAMES.get(i.attr("dtype")) in FLOATS:
        attrs = tuple((k, DTYPE_FROM_NAME[g] if k == "dtype" else v) for k, v in attrs)
    return i.with_(dtype=g, attrs=attrs)


def _blocks(instrs) -> list[list[Instr]]:
    """Consecutive instructions, split where 'inside a backward/poisson block of one stage' changes."""
    key = lambda i: (i.phase in BLOCK, i.stage if i.phase in BLOCK else "")  # noqa: E731
    return [list(grp) for _, grp in itertools.groupby(instrs, key)]


def promote(prog: Program, g: str) -> Program:
    fresh, out = _fresh(prog.instrs), []
    orig: dict[str, tuple] = {}  # register -> (dtype, shape) as the program defined it
    now: dict[str, str] = {}  # register -> dtype after the pass
    for block in _blocks(prog.instrs):
        if block[0].phase not in BLOCK:
            for i in block:
                ren = {}
                for r in i.regs_read if i.op is not Op.SYMP_STEP else ():
                    if r in now and now[r] != orig[r][0]:
                        ren[r] = fresh("T")
                        out.append(_convert(ren[r], r, orig[r][0], i, orig[r][1]))
                out.append(i.with_(args=tuple(ren.get(a, a) for a in i.args)))
                _define(i, i, orig, now)
            continue
        block = [i for i in block if i.op is Op.LOAD] + [i for i in block if i.op is not Op.LOAD]
        local, need = set(), []  # LOADs first (they read no register): converts of them go after
        for i in block:
            if i.op is not Op.LOAD:
                need += [r for r in i.regs_read if r not in local and r not in need
                         and now.get(r) in FLOATS and now[r] != g]  # fmt: skip
                local.update(i.dst)
            _define(i, i, orig, now)  # provisional: LOADed registers are known to later readers
        lead = sum(i.op is Op.LOAD for i in block)
        ren = {r: fresh("T") for r in need}
        out += block[:lead]
        out += [_convert(ren[r], r, g, block[lead], orig[r][1]) for r in need]
        for i in block[lead:]:
            j = i if i.op is Op.LOAD else _promote_instr(i.with_(args=tuple(ren.get(a, a) for a in i.args)), g)
            out.append(j)
            _define(i, j, orig, now)
    return prog.with_instrs(out)


def _define(i: Instr, j: Instr, orig: dict, now: dict) -> None:
    if i.op is Op.STORE:
        return
    for d in i.dst:
        orig[d] = (i.dtype, i.shape)
        now[d] = j.dtype


def _kahan_head(instrs, fresh, states, steps) -> tuple[list, dict, dict]:
    """LOADs of the compensations, dt in the state dtype and c*dt for every step coefficient."""
    loads = {i.dst[0]: i for i in instrs if i.op is Op.LOAD}
    head, comp, cdt, dt_reg = [], {}, {}, {}
    for s in states:
        ld = loads[s]
        comp[s] = fresh("S")
        what = f"Kahan compensation of {ld.comment or s}"
        head.append(ld.with_(dst=(comp[s],), args=(f"{ld.args[0]}_comp",), comment=what))
    for s in states:
        ld = loads[s]
        if ld.dtype not in dt_reg:
            dt_reg[ld.dtype] = fresh("T")
            head.append(_convert(dt_reg[ld.dtype], "dt", ld.dtype, ld, ()).with_(comment="dt"))
    for st in steps:
        key = (st.dtype, st.attr("coef"))
        if key not in cdt:
            cdt[key] = fresh("T")
            fma = Instr(Op.FMA, (cdt[key],), (dt_reg[st.dtype], key[1], 0.0), (), st.dtype, ())
            head.append(fma.with_(comment=f"{key[1]:g}*dt"))
    return head, comp, cdt


def kahan(prog: Program) -> Program:
    """Expand every SYMP_STEP into a Kahan-compensated update (see the module docstring)."""
    fresh, instrs = _fresh(prog.instrs), list(prog.instrs)
    steps = [i for i in instrs if i.op is Op.SYMP_STEP]
    states = [i.dst[0] for i in instrs if i.op is Op.LOAD and any(st.dst[0] == i.dst[0] for st in steps)]
    if not states:  # e.g. the FSAL prologue or the energy program: nothing is stepped
        return prog
    ptrs = {i.dst[0]: i for i in instrs if i.op is Op.LOAD and i.dst[0] in states}
    lead = max(n for n, i in enumerate(instrs) if i.op is Op.LOAD and i.dst[0] in states) + 1
    head, comp, cdt = _kahan_head(instrs, fresh, states, steps)
    out, cur, types = (
        instrs[:lead] + head,
        {s: s for s in states},
        {d: i.dtype for i in instrs for d in i.dst},
    )
    for i in instrs[lead:]:
        args = tuple(cur.get(a, a) for a in i.args)
        if i.op is not Op.SYMP_STEP:
            out.append(i.with_(args=args))
            continue
        s, f = i.dst[0], args[0]
        if types.get(f, i.dtype) != i.dtype:  # the step's own cast of the flow, made explicit
            f2 = fresh("T")
            out.append(_convert(f2, f, i.dtype, i, i.shape))
            f = f2
        y, new, d, e = fresh("T"), fresh("S"), fresh("T"), fresh("S")
        side = i.comment.split(" += ")[0] if " += " in i.comment else s
        note = f"{side} += {i.attr('coef'):g}*dt*{f} (compensated)"

        def fma(dst, *a, note="", i=i):
            return i.with_(op=Op.FMA, dst=(dst,), args=a, attrs=(), comment=note)

        out += [
            fma(y, f, cdt[(i.dtype, i.attr("coef"))], comp[s]),  # y = c*dt*f + e
            fma(new, cur[s], 1.0, y, note=note),  # t = s + y
            fma(d, cur[s], -1.0, new),  # t - s   (exact)
            fma(e, d, -1.0, y),  # e = y - (t - s)
        ]
        cur[s], comp[s] = new, e
    for s in states:
        ld = ptrs[s]
        out.append(Instr(Op.STORE, (f"{ld.args[0]}_comp",), (comp[s],), (), ld.dtype, ld.shape, "integrate"))
    prog = prog.with_instrs(out)
    for s in states:
        prog = declare(prog, f"{ptrs[s].args[0]}_comp", "zeros", ptrs[s].args[0])
    return prog


def precision(policy: Precision) -> Callable[[Program], Program]:
    """The pass for ``policy`` (checked now: a float64 field needs jax_enable_x64)."""
    policy = policy.check()
    g, s = DTYPE_NAMES[policy.grad], DTYPE_NAMES[policy.step]

    def precision_pass(prog: Program) -> Program:
        for i in prog.instrs:
            if i.op is Op.LOAD and i.dst[0].startswith("S") and i.dtype in FLOATS and i.dtype != s:
                raise ValueError(
                    f"Precision(step={policy.step!r}) but the state {i.args[0]} is {i.dtype}: "
                    f"pass {policy.step} arrays or use Precision(step=...) of the state's dtype"
                )
        prog = promote(prog, g)
        if policy.compensated:
            prog = kahan(prog)
        meta = (("precision", f"{g}/{s}"),) + ((("kahan", "1"),) if policy.compensated else ())
        return Program(prog.instrs, prog.meta + meta, prog.opaque)

    precision_pass.policy = policy
    return precision_pass
