"""LIE_CROSS: f = L x g with 6 multiplies and 3 subtractions (the rewrite of POISSON_J type=LIE)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, mlir

from ._common import broadcast_batcher, broadcast_shapes, result_dtype, shaped, unbroadcast
from ._cuda import register_cuda
from ._sharding import same_axes, typed

# 1. primitive
lie_cross_p = Primitive("tp_lie_cross")


# 2. public wrapper
def lie_cross(L, g, impl: str = "xla"):
    """The so(3)* flow ``L x g`` for (..., 3) operands (broadcasting over leading axes). Bilinear.
    ``impl="triton"`` lowers to kernels/lie_cross.py on CUDA."""
    return lie_cross_p.bind(*same_axes(L, g), impl=impl)


# 3. abstract eval
def _abstract(L, g, impl="xla"):
    if L.shape[-1:] != (3,) or g.shape[-1:] != (3,):
        raise TypeError(f"LIE_CROSS needs (..., 3) operands, got {L.shape} and {g.shape}")
    return shaped(broadcast_shapes(L.shape, g.shape), result_dtype(L, g))


# 4. impl: exactly 6 multiplies and 3 subtractions.
def _impl(L, g, impl="xla"):
    l0, l1, l2 = L[..., 0], L[..., 1], L[..., 2]
    g0, g1, g2 = g[..., 0], g[..., 1], g[..., 2]
    f = jnp.stack([l1 * g2 - l2 * g1, l2 * g0 - l0 * g2, l0 * g1 - l1 * g0], axis=-1)
    out = _abstract(jax.typeof(L), jax.typeof(g))
    return jnp.broadcast_to(lax.convert_element_type(f, out.dtype), out.shape)


# 5. JVP (bilinear) and transpose: <ct, dL x g> = <dL, g x ct>;  <ct, L x dg> = <dg, ct x L>.
def _transpose_L(ct, L, g, impl="xla"):
    return unbroadcast(lie_cross_p.bind(g, ct, impl=impl), L.aval.shape)


def _transpose_g(ct, L, g, impl="xla"):
    return unbroadcast(lie_cross_p.bind(ct, L, impl=impl), g.aval.shape)


# 6. batching: batch axes to the front, ranks aligned (the vector axis stays last).
# 7. lowering: the reference through XLA; CUDA via kernels/lie_cross.py.
# 8. registration
lie_cross_p.def_impl(_impl)
lie_cross_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.defbilinear(lie_cross_p, _transpose_L, _transpose_g)
broadcast_batcher(lie_cross_p)
mlir.register_lowering(lie_cross_p, mlir.lower_fun(_impl, multiple_results=False))
register_cuda(lie_cross_p, _impl, "lie_cross")
