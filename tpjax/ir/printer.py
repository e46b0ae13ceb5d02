"""TP-IR text: a seed-style listing (numbered, phased, ``;`` comments) and its exact parser.

Line grammar::

    ; Phase N: <phase>[ | <stage>]                       (a header whenever phase or stage changes)
    NN OP  dst, [func,] arg, ..., key=value, ...  : dtype[shape]  [; comment]

``dst`` is a register, a pointer (STORE) or ``(A, B)`` for several results. ELEM and OPAQUE print their
function first (OPAQUE as ``name#k``, an index into ``Program.opaque``). SYMP_STEP prints its coefficient
with the step: ``0.5*dt``. ``parse(to_text(p), opaque=p.opaque) == p`` for every program.
"""

from __future__ import annotations

import re
from typing import Any

from .node import Instr, Program
from .ops import PHASES, Op

_HEADER = re.compile(r"^; Phase (\d+): (\w+)(?: \| (.*))?$")
_META = re.compile(r"^; TP-IR(.*)$")
_LINE = re.compile(r"^(\d+)\s+(\w+)\s+(.*?)\s+:\s+(\w+)\[([\d,]*)\](?:\s+; (.*))?$")


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, float | int | bool) or v is None:
        return repr(v)
    s = str(v)
    if not re.fullmatch(r"[\w.\[\]\-+]+", s):
        raise ValueError(f"attribute value {s!r} cannot be printed as one TP-IR token")
    return s


def _parse_value(s: str) -> Any:
    s = s.strip()
    if s.startswith("(") and s.endswith(")"):
        inner = s[1:-1]
        return tuple(_parse_value(x) for x in _split(inner) if x.strip())
    if s in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[s]
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _split(s: str) -> list[str]:
    """Split on commas at parenthesis depth 0."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _operands(i: Instr) -> str:
    toks = [i.dst[0] if len(i.dst) == 1 else "(" + ", ".join(i.dst) + ")"]
    attrs = list(i.attrs)
    if i.op is Op.ELEM:
        toks.append(str(attrs.pop(0)[1]))
    elif i.op is Op.OPAQUE:
        toks.append(f"{attrs.pop(0)[1]}#{attrs.pop(0)[1]}")
    for a in i.args:
        if a == "dt" and i.op is Op.SYMP_STEP:
            toks.append(f"{attrs.pop(0)[1]!r}*dt")
        else:
            toks.append(a if isinstance(a, str) else repr(a))
    toks += [f"{k}={_fmt_value(v)}" for k, v in attrs]
    return ", ".join(toks)


def to_text(prog: Program) -> str:
    lines = []
    if prog.meta:
        lines.append("; TP-IR" + "".join(f"  {k}={v}" for k, v in prog.meta))
    where = None
    for n, i in enumerate(prog.instrs, 1):
        if (i.phase, i.stage) != where:
            where = (i.phase, i.stage)
            stage = f" | {i.stage}" if i.stage else ""
            lines.append(f"; Phase {PHASES.index(i.phase) + 1}: {i.phase}{stage}")
        ty = f"{i.dtype}[{','.join(map(str, i.shape))}]"
        line = f"{n:02d} {i.op.value:<10}{_operands(i):<34} : {ty}"
        if i.comment:
            line += f"  ; {i.comment}"
        lines.append(line)
    return "\n".join(lines)


def _parse_instr(op: Op, body: str) -> tuple[tuple, tuple, tuple]:
    toks = _split(body)
    head = toks.pop(0)
    dst = tuple(x.strip() for x in head[1:-1].split(",") if x.strip()) if head.startswith("(") else (head,)
    attrs: list[tuple[str, Any]] = []
    args: list[Any] = []
    if op is Op.ELEM:
        attrs.append(("func", toks.pop(0)))
    elif op is Op.OPAQUE:
        name, key = toks.pop(0).rsplit("#", 1)
        attrs += [("func", name), ("key", int(key))]
    for t in toks:
        if re.fullmatch(r"[A-Za-z_]\w*=.*", t):
            k, v = t.split("=", 1)
            attrs.append((k, _parse_value(v)))
        elif t.endswith("*dt"):
            attrs.append(("coef", _parse_value(t[:-3])))
            args.append("dt")
        elif t in ("True", "False"):  # a boolean literal (a register name never looks like this)
            args.append(t == "True")
        elif t in ("inf", "nan"):
            args.append(float(t))
        elif re.fullmatch(r"[A-Za-z_]\w*", t):
            args.append(t)
        else:
            args.append(_parse_value(t))
    return dst, tuple(args), tuple(attrs)


def parse(text: str, opaque: tuple = ()) -> Program:
    """Parse a listing produced by :func:`to_text` (``opaque`` supplies OPAQUE callables by index)."""
    meta: tuple = ()
    phase, stage = "forward", ""
    instrs = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line:
            continue
        if m := _META.match(line):
            meta = tuple(tuple(kv.split("=", 1)) for kv in m.group(1).split())
            continue
        if m := _HEADER.match(line):
            phase, stage = m.group(2), m.group(3) or ""
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"TP-IR line {lineno} is not an instruction or a header: {raw!r}")
        _, opname, body, dtype, shape, comment = m.groups()
        try:
            op = Op(opname)
        except ValueError:
            raise ValueError(f"TP-IR line {lineno}: unknown op {opname!r}") from None
        dst, args, attrs = _parse_instr(op, body)
        shp = tuple(int(x) for x in shape.split(",") if x)
        instrs.append(Instr(op, dst, args, attrs, dtype, shp, phase, stage, comment or ""))
    return Program(tuple(instrs), meta, tuple(opaque))
