"""Lane independence: a flat-array H whose step program is elementwise runs as one system per element.

A pendulum ensemble written as ``H = sum(p**2 / 2 - cos(q))`` over arrays of shape S (no ``jax.vmap``) is
one "system" of shape S to the tracer, but after the backward phase the step program is elementwise: the
energy's SUM lives only in the forward phase, which the passes remove. Then every element is an independent
system, and the program with every S-shaped register made a scalar is the same arithmetic per element.
``lanes(comp)`` returns that per-element program (for the fused kernel and its reference path), or None
when some instruction couples elements (a SUM, a slice or pad, an OPAQUE op, a parameter of shape S).
"""

from __future__ import annotations

import dataclasses

import jax

from ..ir.node import Program
from ..ir.ops import Op

#: ops that act elementwise (with numpy broadcasting of scalars); POISSON_J only for the canonical types.
_ELEMENTWISE = (Op.LOAD, Op.STORE, Op.FMA, Op.GRAD_INIT, Op.ACC_GRAD, Op.SYMP_STEP, Op.POISSON_J, Op.ELEM)


def _lane_instr(i, S, shapes):
    """``i`` with S-shaped results made scalar, or None when it couples elements."""
    if i.op not in _ELEMENTWISE or i.shape not in (S, ()):
        return None
    if i.op is Op.POISSON_J and i.attr("type") not in ("PASS", "NEGATE"):
        return None
    attrs = i.attrs
    if i.op is Op.ELEM:
        func = i.attr("func")
        if func in ("slice", "pad", "reshape"):
            return None
        if func == "broadcast":  # only a scalar spread over the lanes: each lane keeps the scalar
            if shapes.get(i.args[0]) != ():
                return None
            attrs = tuple((k, () if k in ("shape", "bdims") else v) for k, v in attrs)
        elif func == "convert":
            attrs = tuple((k, () if k == "shape" else v) for k, v in attrs)
    for a in i.args:
        if isinstance(a, str) and a in shapes and shapes[a] not in (S, ()):
            return None
    return i.with_(shape=(), attrs=attrs)


def lane_program(prog: Program, S: tuple[int, ...]) -> Program | None:
    """``prog`` with its S-shaped registers made scalar, or None when it is not elementwise over S."""
    shapes: dict[str, tuple[int, ...]] = {}
    out = []
    for i in prog.instrs:
        if i.op is Op.LOAD and i.args[0].startswith("ptr_c") and i.shape != ():
            return None  # a parameter of H with a shape: its elements differ per lane (codegen takes scalars)
        j = _lane_instr(i, S, shapes)
        if j is None:
            return None
        for d in i.dst:
            shapes[d] = i.shape
        out.append(j)
    return prog.with_instrs(out)


def lanes(comp):
    """The per-element version of a canonical ``comp`` whose state has shape S != (), or None."""
    from ..passes import dce

    S = tuple(comp.traced.avals[0].shape)
    if not S or not comp.structure.canonical:
        return None
    step = lane_program(comp.step, S)
    source = lane_program(dce(comp.source), S)  # the source less the forward energy phase
    pro = lane_program(comp.prologue, S) if comp.prologue is not None else None
    if step is None or source is None or (comp.prologue is not None and pro is None):
        return None
    avals = tuple(jax.ShapeDtypeStruct((), a.dtype) for a in comp.traced.avals)
    traced = dataclasses.replace(comp.traced, avals=avals)
    return dataclasses.replace(comp, step=step, source=source, prologue=pro, traced=traced)
