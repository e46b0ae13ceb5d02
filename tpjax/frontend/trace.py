"""Trace H into TP-IR: the forward (energy) phase from make_jaxpr, gradient blocks from jax.vjp.

The backward phase is never written by hand: H's jaxpr is lowered to a forward TP-IR program, that
program is run through the TP-IR primitives under ``jax.vjp``, and the resulting jaxpr (whose equations
are TP-IR primitives again, by their JVP/transpose rules) is lowered into GRAD_INIT / ACC_GRAD / FMA / ELEM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ..codegen import reference
from ..ir.ops import Op
from ..primitives._sharding import axes_of, vary
from .builder import Builder
from .from_jaxpr import lower_jaxpr


@dataclasses.dataclass
class Traced:
    """H traced once for one state signature: its jaxpr, constants, and one gradient jaxpr per part."""

    structure: Any  # the AbstractStructure (its ``ptrs`` and ``parts`` name the state)
    avals: tuple  # ShapeDtypeStruct of each state part
    jaxpr: Any  # ClosedJaxpr of H
    consts: list  # H's constants (closed-over arrays / parameters), the first C registers of every program
    forward: Callable[..., Any]  # (*parts, *consts) -> E, run through TP-IR primitives
    grads: tuple  # one ClosedJaxpr per part: (*parts, ct, *consts) -> dH/dpart
    energy_aval: Any

    def depends(self, k: int, j: int) -> bool:
        """Does dH/d(part k) depend on part j?  (element by element, from the gradient jaxpr; see
        ``frontend.dependency``: exact through slices, pads, concatenations and indexing, conservative
        elsewhere)"""
        from .dependency import depends

        jx, n = self.grads[k], len(self.avals) + 1  # inputs: (*parts, ct, *consts)
        consts = self.consts[: len(jx.jaxpr.invars) - n]
        return depends(jx, j, {n + c: v for c, v in enumerate(consts)})


def trace(H: Callable, parts: tuple, structure) -> Traced:
    avals = tuple(jax.ShapeDtypeStruct(np.shape(x), jax.typeof(x).dtype) for x in parts)
    closed = jax.make_jaxpr(lambda *xs: H(*xs))(*avals)  # a fresh function: jax caches traces by identity
    (e_aval,) = [v.aval for v in closed.jaxpr.outvars]
    consts = list(closed.consts)
    fwd_prog = forward_program(closed, structure, consts)
    ptrs = structure.ptrs

    def forward(*args):
        xs, cs = args[: len(parts)], args[len(parts) :]
        inputs = dict(zip(ptrs, xs, strict=True)) | {f"ptr_c{k}": c for k, c in enumerate(cs)}
        return reference.run(fwd_prog, inputs)["ptr_E"]

    c_avals = [jax.ShapeDtypeStruct(np.shape(c), jax.typeof(c).dtype) for c in consts]
    ct_aval = jax.ShapeDtypeStruct(e_aval.shape, e_aval.dtype)
    grads = []
    for k in range(len(parts)):

        def g(*args, k=k):
            xs, ct, cs = list(args[: len(parts)]), args[len(parts)], args[len(parts) + 1 :]

            def e(x):
                return forward(*xs[:k], x, *xs[k + 1 :], *cs)

            y, vjp = jax.vjp(e, xs[k])
            return vjp(vary(ct, axes_of(y)))[0]  # shard_map: the cotangent varies like H (per-shard params)

        grads.append(jax.make_jaxpr(g)(*avals, ct_aval, *c_avals))
    return Traced(structure, avals, closed, consts, forward, tuple(grads), e_aval)


def forward_program(closed, structure, consts: list):
    """The forward phase as a program: LOAD state and constants, H's ops, STORE ptr_E."""
    b = Builder()
    regs = [b.load("S", ptr, v.aval, name) for ptr, v, name in
            zip(structure.ptrs, closed.jaxpr.invars, structure.parts, strict=True)]  # fmt: skip
    e = emit_forward(b, closed, consts, regs)
    b.phase = "integrate"
    b.emit(Op.STORE, "ptr_E", (e,), aval=closed.jaxpr.outvars[0].aval, comment="energy")
    return b.program()


def emit_forward(b: Builder, closed, consts, regs) -> str:
    """Append the forward phase of H; returns the energy register E0."""
    b.phase, b.stage = "forward", ""
    (out,) = lower_jaxpr(b, closed.jaxpr, consts, regs)
    aval = closed.jaxpr.outvars[0].aval
    if not isinstance(out, str) or not out.startswith("T"):  # H constant, or H returns an input
        return b.emit(Op.FMA, "E0", (out, 1.0, 0.0), aval=aval, comment="H")
    b.instrs = [i.with_(dst=tuple("E0" if d == out else d for d in i.dst),
                        args=tuple("E0" if a == out else a for a in i.args)) for i in b.instrs]  # fmt: skip
    b.instrs[-1] = b.instrs[-1].with_(comment="H")
    return "E0"


def emit_gradient(b: Builder, tr: Traced, k: int, regs, const_regs, stage: str = "") -> str:
    """Append the backward phase computing dH/d(part k) at the current state registers."""
    b.phase, b.stage = "backward", stage
    name = tr.structure.parts[k]
    ct = b.emit(Op.GRAD_INIT, b.fresh("G"), (1.0,), aval=tr.energy_aval, comment="adjoint of H")
    gj = tr.grads[k]
    (g,) = lower_jaxpr(b, gj.jaxpr, gj.consts, [*regs, ct, *const_regs], adjoint_inputs=(ct,))
    last = b.instrs[-1]
    if isinstance(g, str) and last.dst == (g,):
        b.instrs[-1] = last.with_(comment=f"dH/d{name}")
    return g
