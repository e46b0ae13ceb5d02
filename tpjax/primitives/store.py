"""STORE: write a register back to memory (identity on values; marks the program's outputs)."""

from __future__ import annotations

from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

# 1. primitive
store_p = Primitive("tp_store")


# 2. public wrapper
def store(x):
    """TP-IR ``STORE``: returns ``x`` unchanged; linear, batch-transparent."""
    return store_p.bind(x)


# 3. abstract eval
def _abstract(x):
    return x


# 4. impl
def _impl(x):
    return x


# 5. JVP (linear) and transpose (identity)
def _transpose(ct, x):
    return [ct]


# 6. batching: the batch axis passes through.
def _batch(args, dims):
    return store_p.bind(args[0]), dims[0]


# 7. lowering: the identity.
# 8. registration
store_p.def_impl(_impl)
store_p.def_abstract_eval(_abstract)
ad.deflinear2(store_p, _transpose)
batching.primitive_batchers[store_p] = _batch
mlir.register_lowering(store_p, mlir.lower_fun(_impl, multiple_results=False))
