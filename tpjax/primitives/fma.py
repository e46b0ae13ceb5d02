"""FMA: dst = a*b + c, elementwise with numpy broadcasting (TP-IR op ``FMA``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, mlir

from ._common import (
    broadcast_batcher,
    broadcast_shapes,
    is_undefined,
    operands,
    result_dtype,
    scalar,
    shaped,
    unbroadcast,
    zero_tangent,
)
from ._sharding import typed

# 1. primitive
fma_p = Primitive("tp_fma")


# 2. public wrapper
def fma(a, b, c=0.0):
    """Fused multiply-add ``a*b + c`` (numpy broadcasting; Python numbers become scalar literals).

    Bilinear in (a, b) and linear in c; reverse mode transposes it in whichever of a, b is the tangent.
    """
    return fma_p.bind(*operands(a, b, c))


# 3. abstract eval
def _abstract(a, b, c):
    return shaped(broadcast_shapes(a.shape, b.shape, c.shape), result_dtype(a, b, c))


# 4. impl (the reference interpreter)
def _impl(a, b, c):
    out = _abstract(*map(jax.typeof, (a, b, c)))
    return jnp.broadcast_to(lax.convert_element_type(a * b + c, out.dtype), out.shape)


# 5. JVP and transpose
def broadcast_to(t, shape):
    """Broadcast ``t`` to ``shape`` from the right (numpy rules), as an ELEM broadcast."""
    from .elem import elem

    if tuple(t.shape) == tuple(shape):
        return t
    return elem("broadcast", t, shape=tuple(shape), bdims=tuple(range(len(shape) - t.ndim, len(shape))))


def _jvp(primals, tangents):
    a, b, c = primals
    ta, tb, tc = tangents
    out = fma_p.bind(a, b, c)
    zero = scalar(0, out.dtype)
    acc = None if type(tc) is ad.Zero else tc
    if type(tb) is not ad.Zero:
        acc = fma_p.bind(a, tb, zero if acc is None else acc)
    if type(ta) is not ad.Zero:
        acc = fma_p.bind(ta, b, zero if acc is None else acc)
    if acc is None:
        return out, zero_tangent(out)
    return out, broadcast_to(acc, out.shape)


def _transpose(ct, a, b, c):
    if type(ct) is ad.Zero:
        return [None, None, None]
    if is_undefined(a) and is_undefined(b):
        raise ValueError("FMA is not linear when both a and b are tangents")
    zero = scalar(0, ct.dtype)
    ct_a = unbroadcast(fma_p.bind(ct, b, zero), a.aval.shape) if is_undefined(a) else None
    ct_b = unbroadcast(fma_p.bind(a, ct, zero), b.aval.shape) if is_undefined(b) else None
    ct_c = unbroadcast(ct, c.aval.shape) if is_undefined(c) else None
    return [ct_a, ct_b, ct_c]


# 6. batching: batch axes to the front and ranks aligned; unbatched operands broadcast as they are.
# 7. lowering: the reference through XLA (it fuses into neighbouring elementwise ops).
# 8. registration
fma_p.def_impl(_impl)
fma_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.primitive_jvps[fma_p] = _jvp
ad.primitive_transposes[fma_p] = _transpose
broadcast_batcher(fma_p)
mlir.register_lowering(fma_p, mlir.lower_fun(_impl, multiple_results=False))
