"""One TP-IR program as lines of the fused kernel: loop-carried registers, loads of parameters, stores.

``_emit_block`` translates a step (or prologue) program with ``triton_emit._Emitter``; LOAD and STORE of
``ptr_q`` / ``ptr_p`` / ``ptr_force`` move the registers the time loop carries (components ``q_k`` of a
state of d elements, row-major), a LOAD of an array parameter reads it element by element, and an integer
parameter (``fixed``) becomes constants. Used by ``triton_source.generate_program``.
"""

from __future__ import annotations

import numpy as np

from ..ir.elem_table import ELEM
from ..ir.node import Program
from ..ir.ops import Op
from .triton_emit import _CARRIED, MAX_COMPONENTS, _Emitter

_OPAQUE_MSG = (
    "tpjax Triton codegen: the step program contains {op}, an operation TP-IR lacks (run by XLA as traced "
    "from H); no fused Triton kernel can be generated, so the XLA path (tpjax.integrate) is used."
)


def _state_dim(step: Program) -> int | None:
    """None for a scalar per-system state; else its number of elements d (any shape, row-major in
    registers, 1 <= d <= MAX_COMPONENTS)."""
    shapes = {i.shape for i in step.instrs if i.op is Op.LOAD and i.args[0] in _CARRIED}
    shapes |= {i.shape for i in step.instrs if i.op is Op.STORE and i.dst[0] in _CARRIED}
    if shapes == {()}:
        return None
    if len(shapes) == 1:
        d = int(np.prod(next(iter(shapes)), dtype=np.int64))
        if 1 <= d <= MAX_COMPONENTS:
            return d
    raise NotImplementedError(
        f"tpjax Triton codegen unrolls per-system states of up to {MAX_COMPONENTS} elements into registers; "
        f"this program's state has shape(s) {sorted(shapes)}, so no fused Triton kernel can be generated and "
        "the XLA path (tpjax.integrate) is used."
    )


def uses_bounded_trig(*progs: Program | None) -> bool:
    """Whether the programs compute a float32 sin/cos that ``kernels.trig`` can take (``ELEM`` with a
    ``bounded`` form)."""
    return any(i.op is Op.ELEM and i.dtype == "f32" and getattr(ELEM.get(i.attr("func")), "bounded", None)
               for prog in progs if prog is not None for i in prog.instrs)  # fmt: skip


def _stores(kind: str, row: str, d: int | None) -> list[str]:
    """Stores of q, p to ``{kind}_q_ptr``/``{kind}_p_ptr`` at system offset ``row`` ((N, d) row-major)."""
    if d is None:
        return [f"tl.store({kind}_{x}_ptr + {row}, {x}, mask=mask)" for x in "qp"]
    return [f"tl.store({kind}_{x}_ptr + {row} * {d} + {k}, {x}_{k}, mask=mask)" for x in "qp" for k in range(d)]


def _emit_block(
    prog: Program, prefix: str, dtype: str, d: int | None, fixed=None, trig: str = "libdevice"
) -> list[str]:
    """Triton lines for ``prog``'s instructions; LOAD/STORE of q, p and the force move loop registers.
    ``trig``: the emitter's float32 sin/cos form (``_Emitter.trig``)."""
    em = _Emitter(dtype, prefix, _OPAQUE_MSG, prog.opaque)
    em.fixed = fixed or {}  # integer / bool parameters of H: compile-time constants of the kernel
    em.trig = trig
    for i in prog.instrs:
        if i.op is Op.LOAD:
            _emit_load(em, i, d)
        elif i.op is Op.STORE:
            _emit_store(em, i, d)
        else:
            em.instr(i)
    return em.lines


def _emit_load(em: _Emitter, i, d: int | None) -> None:
    ptr = i.args[0]
    src = _CARRIED.get(ptr) or (f"c{ptr[5:]}" if ptr.startswith("ptr_c") else None)
    if src is None:
        raise NotImplementedError(f"tpjax Triton codegen: LOAD of {ptr}")
    dst = i.dst[0]
    em.shapes[dst] = i.shape
    em.arrays.pop(dst, None)
    if ptr.startswith("ptr_c") and int(ptr[5:]) in em.fixed:
        value = np.asarray(em.fixed[int(ptr[5:])]).reshape(i.shape)
        em.arrays[dst] = value
        for name, v in zip(em.names(dst, i.shape), value.reshape(-1), strict=True):
            em.consts[name] = v
        em.lines.append(f"# LOAD {ptr} -> constant {value.dtype}{list(value.shape)}  [{i.phase}]")
        return
    if i.shape == ():
        em.consts.pop(dst, None)
        em.lines.append(f"{em.name(dst)} = {src}  # [{i.phase}] LOAD {ptr}")
        return
    size = int(np.prod(i.shape, dtype=np.int64))
    if ptr in _CARRIED and size != d:
        raise NotImplementedError(f"tpjax Triton codegen: LOAD of {ptr} with shape {i.shape}")
    if size > MAX_COMPONENTS:
        raise NotImplementedError(
            f"tpjax Triton codegen: parameter {ptr} of H has {size} elements (at most {MAX_COMPONENTS} unroll)"
        )
    for k in range(size):
        em.consts.pop(f"{dst}_{k}", None)
        val = f"{src}_{k}" if ptr in _CARRIED else f"tl.load({src}_ptr + {k})"  # a parameter array: uniform loads
        em.lines.append(f"{em.name(f'{dst}_{k}')} = {val}  # [{i.phase}] LOAD {ptr}")


def _emit_store(em: _Emitter, i, d: int | None) -> None:
    ptr = i.dst[0]
    if ptr not in _CARRIED:
        raise NotImplementedError(f"tpjax Triton codegen: STORE to {ptr}")
    if d is None:
        em.lines.append(f"{_CARRIED[ptr]} = {em.tensor(i.args[0])}  # [{i.phase}] STORE {ptr}")
        return
    for k in range(d):
        val = em.tensor(em.component(i.args[0], k))
        em.lines.append(f"{_CARRIED[ptr]}_{k} = {val}  # [{i.phase}] STORE {ptr}")
