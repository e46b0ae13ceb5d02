"""LOAD: bring a value from memory into a register (identity on values; marks the program's inputs)."""

from __future__ import annotations

from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

# 1. primitive
load_p = Primitive("tp_load")


# 2. public wrapper
def load(x):
    """TP-IR ``LOAD``: returns ``x`` unchanged; linear, batch-transparent."""
    return load_p.bind(x)


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
    return load_p.bind(args[0]), dims[0]


# 7. lowering: the identity.
# 8. registration
load_p.def_impl(_impl)
load_p.def_abstract_eval(_abstract)
ad.deflinear2(load_p, _transpose)
batching.primitive_batchers[load_p] = _batch
mlir.register_lowering(load_p, mlir.lower_fun(_impl, multiple_results=False))
