"""SYMP_STEP: the update s <- s + coef*dt*f (TP-IR op ``SYMP_STEP``).

``dt`` is an operand (a scalar per system; changing it never recompiles); ``coef`` is the static stage
coefficient of the method (e.g. 0.5 for a half kick). The result has the state's dtype: under a mixed
precision policy the flow may be float64 while the step and the stored state stay float32.
"""

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
    scalar,
    shaped,
    unbroadcast,
    zero_tangent,
)
from ._cuda import register_cuda
from ._sharding import same_axes, typed

# 1. primitive
symp_step_p = Primitive("tp_symp_step")


# 2. public wrapper
def symp_step(s, f, dt, coef: float = 1.0, impl: str = "xla"):
    """Return ``s + coef*dt*f`` in the dtype of ``s``. Linear in (s, f) and in (s, dt).

    ``impl`` (static) picks the CUDA lowering: "xla" (fuses with its neighbours) or "triton" (the
    hand-written kernel in kernels/symp_step.py); other platforms always use the XLA reference."""
    dt = jnp.asarray(dt, dtype=jax.typeof(s).dtype) if isinstance(dt, int | float) else dt
    return symp_step_p.bind(*same_axes(s, f, dt), coef=float(coef), impl=impl)


# 3. abstract eval
def _abstract(s, f, dt, *, coef, impl="xla"):
    shape = broadcast_shapes(s.shape, f.shape, dt.shape)
    return shaped(shape, s.dtype)


# 4. impl
def _impl(s, f, dt, *, coef, impl="xla"):
    dtype = jax.typeof(s).dtype
    step = lax.convert_element_type(f, dtype) * (lax.convert_element_type(dt, dtype) * coef)
    return jnp.broadcast_to(s + step, _abstract(*map(jax.typeof, (s, f, dt)), coef=coef, impl=impl).shape)


# 5. JVP and transpose: d(s + c dt f) = ds + c dt df + c ddt f.
def _jvp(primals, tangents, *, coef, impl):
    s, f, dt = primals
    ts, tf, tdt = tangents
    out = symp_step_p.bind(s, f, dt, coef=coef, impl=impl)
    acc = None if type(ts) is ad.Zero else ts
    if type(tf) is not ad.Zero:
        acc = symp_step_p.bind(scalar(0, out.dtype) if acc is None else acc, tf, dt, coef=coef, impl=impl)
    if type(tdt) is not ad.Zero:
        acc = symp_step_p.bind(scalar(0, out.dtype) if acc is None else acc, f, tdt, coef=coef, impl=impl)
    if acc is None:
        return out, zero_tangent(out)
    from .fma import broadcast_to

    return out, broadcast_to(acc, out.shape)


def _transpose(ct, s, f, dt, *, coef, impl):
    from .fma import fma

    if type(ct) is ad.Zero:
        return [None, None, None]
    if is_undefined(f) and is_undefined(dt):
        raise ValueError("SYMP_STEP is not linear when both the flow and dt are tangents")
    ct_s = unbroadcast(ct, s.aval.shape) if is_undefined(s) else None
    ct_f = unbroadcast(fma(ct, fma(dt, coef)), f.aval.shape) if is_undefined(f) else None
    ct_dt = unbroadcast(fma(fma(ct, f), coef), dt.aval.shape) if is_undefined(dt) else None
    if ct_f is not None and ct_f.dtype != f.aval.dtype:
        ct_f = lax.convert_element_type(ct_f, f.aval.dtype)
    if ct_dt is not None and ct_dt.dtype != dt.aval.dtype:
        ct_dt = lax.convert_element_type(ct_dt, dt.aval.dtype)
    return [ct_s, ct_f, ct_dt]


# 6. batching: batch axes to the front, ranks aligned (a per-member dt broadcasts over the state).
# 7. lowering: the reference through XLA; on CUDA with impl="triton", kernels/symp_step.py.
# 8. registration
symp_step_p.def_impl(_impl)
symp_step_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.primitive_jvps[symp_step_p] = _jvp
ad.primitive_transposes[symp_step_p] = _transpose
broadcast_batcher(symp_step_p)
mlir.register_lowering(symp_step_p, mlir.lower_fun(_impl, multiple_results=False))
register_cuda(symp_step_p, _impl, "symp_step")
