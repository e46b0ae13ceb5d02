"""The fused step kernel in the tile form (``triton_tile``): the time loop and saving contract of the unrolled
kernel (``triton_source``), with q, p and the FSAL force carried as ``[BLOCK, P...]`` tensors.

Signature: the unrolled kernel's, with ``tab_ptr`` (the constant table, ``triton_tile.Table``) after the
parameters when the program has non-uniform constants. The generated module records what the launcher
needs: ``TPJAX_BLOCK`` (systems per program, ``TILE_BLOCK``), ``TPJAX_NUM_WARPS``
and ``TPJAX_TABLE`` (the table's values, or None).
"""

from __future__ import annotations

import numpy as np

from ..ir.node import Program
from ..ir.ops import Op
from .triton_emit import _CARRIED
from .triton_kernel_body import _signature
from .triton_tile import Table, TileEmitter, padded, size

#: systems per program (at least), and the widest padded array that runs on 4 warps (wider ones on 8).
#: Measured on the H200 (benchmarks/README.md, "The tile form"), over 1 to 16 systems per program and 4 to 16
#: warps: 4 systems was the fastest (or within 6%) for FPU chains of d = 64, 128, 256 and Lennard-Jones
#: clusters of 32 and 64 atoms; 4 warps for the chains and the 32-atom cluster (2048-element distance tensor),
#: 8 for 64 atoms (8192); fewer systems or more warps failed Triton 3.6's compile for the chains (a gather
#: layout assertion) or ran 10x to 100x slower for the clusters.
TILE_BLOCK = 4
WIDE_SYSTEM = 2048
#: values per program for small systems (widest padded array under 128 elements): more systems per program,
#: since tiles of fewer elements than threads did not compile (e.g. [4, 16] on 4 warps).
SMALLEST_TILE = 1024


def tile_kernel(step: Program, prologue: Program | None, dtype: str, shape: tuple[int, ...], save: bool, fixed,
                ncon: int, scalars: list[int], opaque_msg: str) -> tuple[list[str], str]:  # fmt: skip
    """The kernel's lines and the module's launch constants, or NotImplementedError for a program the tile
    form cannot write. ``shape``: the per-system state shape."""
    table, pre = Table(), {}
    widest, blocks = size(padded(shape)), []
    for prog, prefix in ((prologue, "i_"), (step, "")):
        em = TileEmitter(dtype, prefix, opaque_msg, prog.opaque if prog else (), table, pre)
        em.fixed = fixed or {}
        em.dims(shape)
        for i in prog.instrs if prog is not None else ():
            if i.op is Op.LOAD:
                _load(em, i, shape)
            elif i.op is Op.STORE:
                _store(em, i, shape)
            else:
                em.instr(i)
        widest = max(widest, em.widest)
        blocks.append(em.lines)
    block = TILE_BLOCK if widest * TILE_BLOCK >= SMALLEST_TILE // 2 else min(64, SMALLEST_TILE // widest)
    warps = 4 if widest <= WIDE_SYSTEM else 8
    body = _signature(save, "".join(f"c{k}_ptr, " for k in range(ncon)) + ("tab_ptr, " if table.values else ""))
    ind = "    "
    em = TileEmitter(dtype, "", opaque_msg, (), table, pre)
    offsets = _offsets(em, shape)
    inside = em.inside(shape, range(len(shape)))
    head = [
        "rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "mask = rows < N",
        *pre.values(),
        f"smask = tl.reshape(mask, [BLOCK{', 1' * len(shape)}])" + (f" & {inside}" if inside else ""),
        f"soffs = {offsets}",
        "dt = tl.load(dt_ptr)",
        *(f"c{k} = tl.load(c{k}_ptr)" for k in scalars),
        *(f"{x} = tl.load({x}_ptr + {_row('rows', shape)} * {size(shape)} + soffs, mask=smask, other=0.0)"
          for x in "qp"),
    ]  # fmt: skip
    body += [ind + ln for ln in head]
    if prologue is not None:
        body += [ind + "# ---- prologue: initial force (computed once) ----", *(ind + ln for ln in blocks[0])]
    loop = [ind * 2 + ln for ln in blocks[1]]
    if not save:
        body += [ind + "for _ in range(n_steps):", *loop]
    else:
        body += [ind + "srow = rows", ind + "for _ in range(n_saves):", ind * 2 + "for _ in range(save_every):"]
        body += [ind + ln for ln in loop] + [ind * 2 + ln for ln in _stores("save", "srow", shape)]
        body += [ind * 2 + "srow += N"]
    body += [ind + ln for ln in _stores("out", "rows", shape)]
    values = [float(np.asarray(v, np.float64)) for v in table.values]
    consts = f"TPJAX_BLOCK = {block}\nTPJAX_NUM_WARPS = {warps}\nTPJAX_TABLE = {values if values else None!r}\n"
    return body, consts


def _row(rows: str, shape) -> str:
    return f"tl.reshape({rows}, [BLOCK{', 1' * len(shape)}])"


def _offsets(em: TileEmitter, shape) -> str:
    """Row-major offsets of a system's components, as a ``[1, P...]`` tensor."""
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]
    terms = [f"{em.index(len(shape), a, n)} * {int(s)}" for a, (n, s) in enumerate(zip(shape, strides, strict=True))]
    return " + ".join(terms)


def _stores(kind: str, row: str, shape) -> list[str]:
    return [f"tl.store({kind}_{x}_ptr + {_row(row, shape)} * {size(shape)} + soffs, {x}, mask=smask)" for x in "qp"]


def _load(em: TileEmitter, i, shape) -> None:
    ptr, dst = i.args[0], i.dst[0]
    em.shapes[dst] = tuple(i.shape)
    em.arrays.pop(dst, None)
    em.consts.pop(dst, None)
    em.bools.discard(dst)
    if ptr in _CARRIED:
        if tuple(i.shape) != tuple(shape):
            raise NotImplementedError(f"tpjax Triton codegen: LOAD of {ptr} with shape {i.shape}")
        em.lines.append(f"{em.name(dst)} = {_CARRIED[ptr]}  # [{i.phase}] LOAD {ptr}")
        return
    if not ptr.startswith("ptr_c"):
        raise NotImplementedError(f"tpjax Triton codegen: LOAD of {ptr}")
    k = int(ptr[5:])
    if k in em.fixed:
        em.set_constant(dst, np.asarray(em.fixed[k]).reshape(i.shape), i)
        return
    if i.shape == ():
        em.lines.append(f"{em.name(dst)} = c{k}  # [{i.phase}] LOAD {ptr}")
        return
    if i.dtype not in ("f32", "f64"):
        raise NotImplementedError(f"tpjax Triton codegen (tile form): parameter {ptr} of dtype {i.dtype}")
    em.dims(i.shape)
    name = f"c{k}_tile"
    em.pre[name] = f"{name} = tl.load(c{k}_ptr + {_offsets(em, tuple(i.shape))}{_mask(em, i.shape)})"
    em.lines.append(f"{em.name(dst)} = tl.broadcast_to({name}, {em.dims(i.shape)})  # [{i.phase}] LOAD {ptr}")


def _mask(em, shape) -> str:
    inside = em.inside(tuple(shape), range(len(shape)))
    return f", mask={inside}, other=0.0" if inside else ""


def _store(em: TileEmitter, i, shape) -> None:
    ptr, a = i.dst[0], i.args[0]
    if ptr not in _CARRIED:
        raise NotImplementedError(f"tpjax Triton codegen: STORE to {ptr}")
    em.out = tuple(shape)
    value = em.tensor(a)
    em.out = None
    em.lines.append(f"{_CARRIED[ptr]} = {value}  # [{i.phase}] STORE {ptr}")
