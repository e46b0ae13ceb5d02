"""ACC_GRAD: add one chain-rule term to an adjoint accumulator, g = acc + term."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, mlir

from ._common import broadcast_batcher, broadcast_shapes, operands, result_dtype, shaped, unbroadcast
from ._sharding import typed

# 1. primitive
acc_grad_p = Primitive("tp_acc_grad")


# 2. public wrapper
def acc_grad(acc, term):
    """``acc + term`` (numpy broadcasting). Linear in both operands."""
    return acc_grad_p.bind(*operands(acc, term))


# 3. abstract eval
def _abstract(acc, term):
    return shaped(broadcast_shapes(acc.shape, term.shape), result_dtype(acc, term))


# 4. impl
def _impl(acc, term):
    out = _abstract(jax.typeof(acc), jax.typeof(term))
    return jnp.broadcast_to(lax.convert_element_type(acc + term, out.dtype), out.shape)


# 5. JVP (linear) and transpose: the cotangent flows to both operands.
def _transpose(ct, acc, term):
    return [unbroadcast(ct, acc.aval.shape), unbroadcast(ct, term.aval.shape)]


# 6. batching: batch axes to the front, ranks aligned.
# 7. lowering: the reference through XLA.
# 8. registration
acc_grad_p.def_impl(_impl)
acc_grad_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.deflinear2(acc_grad_p, _transpose)
broadcast_batcher(acc_grad_p)
mlir.register_lowering(acc_grad_p, mlir.lower_fun(_impl, multiple_results=False))
