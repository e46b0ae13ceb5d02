"""Layout instructions of per-system arrays in the generated Triton kernel: component renaming and sums.

A per-system array register ``R`` of shape S lives in registers as its components ``R_0 .. R_{n-1}``
(row-major flat index). Layout ELEMs (broadcast, reshape, slice, pad) move no data: each output component
is a copy of one input component or the constant 0, and the copies cost nothing after Triton's SSA
renaming. ``SUM`` over axes is a balanced tree of adds per output component. Both work on the object
arrays of component operands that ``_Emitter.comps`` gives, so the index arithmetic is numpy's own.
"""

from __future__ import annotations

import numpy as np

#: the ELEM functions handled here (``convert`` is elementwise and stays with the emitter).
LAYOUT = ("broadcast", "reshape", "slice", "pad")


def layout(em, i) -> None:
    """ELEM broadcast / reshape / slice / pad of any per-system shape: a renaming of components."""
    f, src, dst = i.attr("func"), i.args[0], i.dst[0]
    if isinstance(src, str) and src == dst:
        raise NotImplementedError(f"tpjax Triton codegen: ELEM {f} writes its own operand {src}")
    out = apply_layout(i, em.comps(src), 0.0)
    em.assign(dst, tuple(i.shape), list(out.reshape(-1)), i)


def apply_layout(i, x: np.ndarray, fill) -> np.ndarray:
    """The layout ELEM ``i`` (broadcast, reshape, slice, pad) applied to the numpy array ``x`` (of numbers,
    or of component operands); padding with ``fill``."""
    f = i.attr("func")
    if f == "broadcast":
        shape, bdims = tuple(i.attr("shape")), tuple(i.attr("bdims"))
        lifted = [1] * len(shape)
        for d_in, d_out in enumerate(bdims):
            lifted[d_out] = x.shape[d_in]
        out = np.broadcast_to(x.reshape(lifted), shape)
    elif f == "reshape":
        out = x.reshape(tuple(i.attr("shape")))
    elif f == "slice":
        out = x[tuple(slice(a, b) for a, b in zip(i.attr("start"), i.attr("limit"), strict=True))]
    else:  # pad with zeros: lo, hi >= 0 (the frontend keeps other paddings OPAQUE)
        lo, hi = i.attr("lo"), i.attr("hi")
        out = np.full(tuple(n + a + b for n, a, b in zip(x.shape, lo, hi, strict=True)), fill, x.dtype)
        out[tuple(slice(a, a + n) for a, n in zip(lo, x.shape, strict=True))] = x
    if tuple(out.shape) != tuple(i.shape):
        raise NotImplementedError(f"tpjax Triton codegen: ELEM {f} to shape {i.shape} from {np.shape(x)}")
    return np.ascontiguousarray(out)


def reduce_sum(em, i) -> None:
    """SUM over ``axis`` (None: every axis): per output component, a balanced tree of adds of the summed
    components (folded to a constant when all of them are constants)."""
    x = em.comps(i.args[0])
    axes = tuple(range(x.ndim)) if i.attr("axis") is None else tuple(int(a) % max(x.ndim, 1) for a in i.attr("axis"))
    kept = [a for a in range(x.ndim) if a not in axes]
    grouped = np.transpose(x, (*kept, *axes)).reshape(*(x.shape[a] for a in kept), -1)
    out_shape = tuple(x.shape[a] for a in kept)
    if out_shape != tuple(i.shape):
        raise NotImplementedError(f"tpjax Triton codegen: SUM axis={i.attr('axis')} to shape {i.shape}")
    names = em.names(i.dst[0], out_shape)
    for k, idx in enumerate(np.ndindex(out_shape)):
        _tree(em, names[k], list(grouped[idx]), i)
    em.shapes[i.dst[0]] = out_shape


def _tree(em, dst: str, parts: list, i) -> None:
    if len(parts) == 1:
        em.assign(dst, (), parts, i)
        return
    if all(em.is_const(x) for x in parts):
        vals = [em.value(x) for x in parts]
        while len(vals) > 1:
            vals = [em.np(vals[j] + vals[j + 1]) if j + 1 < len(vals) else vals[j] for j in range(0, len(vals), 2)]
        em.consts[dst] = vals[0]
        em.lines.append(f"# {_tag(i)} -> constant {em.lit(vals[0])}  [{i.phase}]")
        return
    em.consts.pop(dst, None)
    terms = [em.ref(x) for x in parts]
    while len(terms) > 1:
        terms = [f"({terms[j]} + {terms[j + 1]})" if j + 1 < len(terms) else terms[j] for j in range(0, len(terms), 2)]
    em.emit(dst, terms[0][1:-1], i)


def _tag(i) -> str:
    return i.op.value
