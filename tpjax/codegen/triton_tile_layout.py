"""Layout instructions (broadcast, reshape, slice, pad) on the tile form's ``[BLOCK, P...]`` tensors.

``broadcast`` inserts unit dimensions (a Triton reshape) and broadcasts; a ``reshape`` that only adds or
drops unit dimensions (or maps power-of-two shapes, where padding changes nothing) is a Triton reshape;
``slice`` and zero ``pad`` move components along one axis: a ``tl.gather`` with the shifted, clamped index
and, for ``pad``, a ``tl.where`` that zeroes the new entries. Constants fold through
``triton_layout.apply_layout``.
"""

from __future__ import annotations

from .triton_emit import _TL_DTYPE
from .triton_layout import apply_layout as apply_layout


def layout(em, i, x: str, shape: tuple[int, ...]) -> str:
    """The Triton expression of layout ELEM ``i`` applied to tensor ``x`` of per-system ``shape``."""
    f, out = i.attr("func"), tuple(i.shape)
    em.dims(out)
    if shape == ():
        x, shape = f"tl.reshape({x}, [BLOCK{', 1' * len(out)}])", (1,) * len(out)
        if f in ("broadcast", "reshape"):
            return f"tl.broadcast_to({x}, {em.dims(out)})"
    if f == "broadcast":
        lifted = [1] * len(out)
        for d_in, d_out in enumerate(i.attr("bdims")):
            lifted[d_out] = shape[d_in]
        if tuple(lifted) != shape:
            x = f"tl.reshape({x}, [BLOCK, {', '.join(map(str, padded(lifted)))}])"
        return f"tl.broadcast_to({x}, {em.dims(out)})"
    if f == "reshape":
        keep = lambda s: [n for n in s if n != 1]  # noqa: E731
        if keep(shape) != keep(out) and not all(pow2(n) == n for n in (*shape, *out)):
            raise NotImplementedError(
                f"tpjax Triton codegen (tile form): reshape from {shape} to {out} moves components between "
                "padded dimensions"
            )
        if out == ():
            return f"tl.reshape({x}, [BLOCK])"
        return f"tl.reshape({x}, {em.dims(out)})"
    cur = list(shape)
    if f == "slice":
        for axis, (a, b) in enumerate(zip(i.attr("start"), i.attr("limit"), strict=True)):
            x = _shift(em, x, cur, axis, a, b - a, None)
    else:
        for axis, (lo, hi) in enumerate(zip(i.attr("lo"), i.attr("hi"), strict=True)):
            if lo or hi:
                x = _shift(em, x, cur, axis, -lo, cur[axis] + lo + hi, (lo, lo + cur[axis]))
    if tuple(cur) != out:
        raise NotImplementedError(f"tpjax Triton codegen: ELEM {f} to shape {out} from {shape}")
    return x if out != () else f"tl.reshape({x}, [BLOCK])"


def pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def padded(shape) -> tuple[int, ...]:
    """The tile's per-system dimensions for an array of ``shape`` (each rounded up to a power of two)."""
    return tuple(pow2(n) for n in shape)


#: an axis of at most this many (padded) entries is shifted by masked sums, not ``tl.gather`` (Triton 3.6's
#: gather layout pass asserts on some small gathers, e.g. [64, 2] -> [64, 1]; tests/test_tile_kernels.py).
SMALL_AXIS = 8


def _shift(em, x: str, cur: list[int], axis: int, c: int, n_out: int, keep) -> str:
    """``out[j] = in[j + c]`` along ``axis`` (``cur`` becomes the new shape); ``keep = (lo, hi)``: entries
    outside [lo, hi) become 0."""
    n_in, rank = cur[axis], len(cur)
    cur[axis] = n_out
    lo, hi = keep if keep is not None else (0, n_out)
    if c != 0 or pow2(n_in) != pow2(n_out):
        if pow2(n_in) <= SMALL_AXIS and pow2(n_out) <= SMALL_AXIS:
            return _small_shift(em, x, cur, axis, c, n_in, lo, hi)
        ix = em.index(rank, axis, n_out)
        idx = f"tl.broadcast_to(tl.minimum(tl.maximum({ix} + {c}, 0), {pow2(n_in) - 1}), {em.dims(cur)})"
        x = f"tl.gather({x}, {idx}, {axis + 1})"
    ix = em.index(rank, axis, n_out)
    conds = [cond for cond, need in ((f"({ix} >= {lo})", lo > 0), (f"({ix} < {hi})", hi < n_out)) if need]
    return f"tl.where({' & '.join(conds)}, {x}, 0.0)" if conds else x


def _small_shift(em, x: str, cur: list[int], axis: int, c: int, n_in: int, lo: int, hi: int) -> str:
    """The shift of ``_shift`` on a small axis: each kept output entry j is the masked sum over the input
    axis picking entry j + c (exact: the other terms are zeros), placed by a ``tl.where`` on the output axis."""
    rank, n_out = len(cur), cur[axis]
    src_ix = em.index(rank, axis, n_in)
    out_ix = em.index(rank, axis, n_out)
    expr = f"tl.zeros({em.dims(cur)}, {_TL_DTYPE[em.dtype]})"
    for j in range(max(lo, 0), min(hi, n_out)):
        if not 0 <= j + c < n_in:
            continue
        pick = f"tl.sum(tl.where({src_ix} == {j + c}, {x}, 0.0), axis={axis + 1}, keep_dims=True)"
        expr = f"tl.where({out_ix} == {j}, {pick}, {expr})"
    return f"tl.broadcast_to({expr}, {em.dims(cur)})"
