"""Shared rule helpers for the elementwise TP-IR primitives (broadcast batching, unbroadcasting)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.core import ShapedArray
from jax.interpreters import ad, batching

DTYPE_NAMES = {
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
    "int32": "i32", "int64": "i64", "bool": "bool", "uint32": "u32", "int8": "i8", "uint8": "u8",
}  # fmt: skip
DTYPE_FROM_NAME = {v: k for k, v in DTYPE_NAMES.items()}


def dtype_name(dtype) -> str:
    return DTYPE_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)


def result_dtype(*avals):
    """The dtype of an elementwise result: the operands' common inexact dtype (weak scalars follow)."""
    strong = [a.dtype for a in avals if not getattr(a, "weak_type", False)]
    return np.result_type(*(strong or [a.dtype for a in avals]))


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise TypeError(f"TP-IR operands do not broadcast: shapes {shapes}") from None


def operands(*xs):
    """Turn Python numbers among ``xs`` into scalar literals of the array operands' common dtype (and, inside
    shard_map, cast the arrays to vary over the same manual axes: ``_sharding.same_axes``)."""
    from ._sharding import same_axes

    arrays = [jax.typeof(x) for x in xs if not isinstance(x, bool | int | float)]
    dtype = result_dtype(*arrays) if arrays else np.dtype(jax.dtypes.canonicalize_dtype(float))
    return same_axes(*(scalar(x, dtype) if isinstance(x, bool | int | float) else x for x in xs))


def zero_tangent(x):
    """A symbolic-zero tangent for the primal result ``x``."""
    return ad.Zero(jax.typeof(x).to_tangent_aval())


def shaped(shape, dtype):
    return ShapedArray(tuple(shape), np.dtype(dtype))


def scalar(value, dtype):
    """A numpy scalar constant (a literal in jaxprs)."""
    return np.asarray(value, dtype=dtype)


def broadcast_batcher(prim):
    """Batching rule for an elementwise primitive with numpy broadcasting.

    Batched operands get their batch axis moved to the front and singleton axes inserted so that they
    align with the (unbatched) result rank; unbatched operands already broadcast from the right.
    """

    def rule(args, dims, **params):
        rank = max(np.ndim(a) - (d is not None) for a, d in zip(args, dims, strict=True))
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        out = []
        for a, d in zip(args, dims, strict=True):
            if d is None:
                out.append(a)
                continue
            a = jnp.moveaxis(a, d, 0)
            pad = rank - (a.ndim - 1)
            out.append(lax.reshape(a, (size,) + (1,) * pad + a.shape[1:]) if pad else a)
        return prim.bind(*out, **params), 0

    batching.primitive_batchers[prim] = rule
    return rule


def unbroadcast(x, shape):
    """Sum ``x`` down to ``shape`` (the transpose of numpy broadcasting), in TP-IR primitives."""
    from .elem import elem
    from .sum import tp_sum

    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, (n, m) in enumerate(zip(shape, x.shape[lead:], strict=True)) if n == 1 and m != 1
    )
    y = tp_sum(x, axes) if axes else x
    return elem("reshape", y, shape=shape) if tuple(y.shape) != shape else y


def is_undefined(x) -> bool:
    return isinstance(x, ad.UndefinedPrimal)


def aval_of(x):
    return x.aval if is_undefined(x) else x
