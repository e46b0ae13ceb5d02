"""GRAD_INIT: start an adjoint accumulator, g = value (1 for the output's adjoint, 0 otherwise)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import mlir

from ._common import shaped

# 1. primitive
grad_init_p = Primitive("tp_grad_init")


# 2. public wrapper
def grad_init(value: float, shape=(), dtype="float32"):
    """A fresh gradient register filled with ``value`` (static), of static ``shape`` and ``dtype``."""
    return grad_init_p.bind(value=float(value), shape=tuple(shape), dtype=np.dtype(dtype).name)


# 3. abstract eval
def _abstract(*, value, shape, dtype):
    return shaped(shape, dtype)


# 4. impl
def _impl(*, value, shape, dtype):
    return jnp.full(shape, value, dtype)


# 5. JVP / transpose: a constant has no operands, so JAX never asks for either.
# 6. batching: no operands, never batched.
# 7. lowering: the reference through XLA (a constant).
# 8. registration
grad_init_p.def_impl(_impl)
grad_init_p.def_abstract_eval(_abstract)
mlir.register_lowering(grad_init_p, mlir.lower_fun(_impl, multiple_results=False))
