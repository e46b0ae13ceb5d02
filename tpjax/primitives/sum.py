"""SUM: dst = sum of x over ``axes`` (TP-IR op ``SUM``; the energy reductions)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ._common import shaped
from ._sharding import typed

# 1. primitive
sum_p = Primitive("tp_sum")


# 2. public wrapper
def tp_sum(x, axes=None):
    """Sum ``x`` over ``axes`` (a tuple of non-negative ints; None = all). Linear."""
    axes = tuple(range(x.ndim)) if axes is None else tuple(sorted(int(a) % max(x.ndim, 1) for a in axes))
    return sum_p.bind(x, axes=axes)


# 3. abstract eval
def _abstract(x, *, axes):
    return shaped(tuple(n for i, n in enumerate(x.shape) if i not in axes), x.dtype)


# 4. impl
def _impl(x, *, axes):
    return jnp.sum(x, axis=axes).astype(jax.typeof(x).dtype)


# 5. JVP (linear) and transpose: broadcast the cotangent back over the summed axes.
def _transpose(ct, x, *, axes):
    from .elem import elem

    shape = x.aval.shape
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    return [elem("broadcast", ct, shape=shape, bdims=kept)]


# 6. batching: the batch axis goes first and the summed axes shift by one.
def _batch(args, dims, *, axes):
    (x,), (d,) = args, dims
    x = jnp.moveaxis(x, d, 0)
    return sum_p.bind(x, axes=tuple(a + 1 for a in axes)), 0


# 7. lowering: the reference through XLA.
# 8. registration
sum_p.def_impl(_impl)
sum_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.deflinear2(sum_p, _transpose)
batching.primitive_batchers[sum_p] = _batch
mlir.register_lowering(sum_p, mlir.lower_fun(_impl, multiple_results=False))
