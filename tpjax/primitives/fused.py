"""FUSED_INTEGRATE: a whole ensemble run, ``steps`` steps of a compiled method, as one primitive.

On CUDA it lowers to the fused multi-step Triton kernel generated from the TP-IR program
(codegen/triton.py: state and FSAL force in registers, only the final state written); elsewhere, and for
every derivative, to the reference path (the TP-IR primitives in a lax.scan with the reversible adjoint).
The primitive owns what triton_call lacks: batching (vmap axes fold into the kernel's flat grid) and
differentiation (JVP of the reference path; reverse mode transposes that).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

# 1. primitive
fused_integrate_p = Primitive("tp_fused_integrate")
fused_integrate_p.multiple_results = True


# 2. public wrapper
def fused_integrate(comp, q, p, dt, consts=(), *, steps: int, fast_math: bool = False):
    """Final (q, p) of every system of the ensemble (q, p: any shape, one scalar system per element)."""
    return fused_integrate_p.bind(q, p, dt, *consts, comp=comp, steps=int(steps), fast_math=bool(fast_math))


# 3. abstract eval
def _abstract(q, p, dt, *consts, comp, steps, fast_math):
    return [jax.core.ShapedArray(q.shape, q.dtype), jax.core.ShapedArray(p.shape, p.dtype)]


# 4. impl: the reference path, one scalar system per element
def _reference(q, p, dt, *consts, comp, steps, fast_math):
    from .. import adjoint
    from ..api import _for_xla, _initial, _stepper

    comp = _for_xla(comp)
    step, _ = _stepper(comp)

    def one(a, b):
        z0 = _initial(comp, (a, b), consts)
        z = adjoint.solve(step, z0, dt, tuple(consts), steps=steps, adjoint="reversible")
        return z[0], z[1]

    qf, pf = jax.vmap(one)(q.reshape(-1), p.reshape(-1))
    return [qf.reshape(q.shape), pf.reshape(p.shape)]


# 5. JVP: the reference path's (its reverse mode is the reversible adjoint); no transpose (not linear).
def _jvp(primals, tangents, **params):
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    out = fused_integrate_p.bind(*primals, **params)
    _, t_out = jax.jvp(lambda *xs: _reference(*xs, **params), tuple(primals), tuple(tangents))
    return out, list(t_out)


# 6. batching: batched (q, p) fold into the flat ensemble; a batched dt or parameter takes the reference.
def _batch(args, dims, **params):
    q, p, dt, *consts = args
    dq, dp, ddt, *dcs = dims
    if ddt is not None or any(d is not None for d in dcs):
        f = jax.vmap(lambda *xs: tuple(_reference(*xs, **params)), in_axes=tuple(dims))
        return list(f(*args)), [0, 0]
    size = q.shape[dq] if dq is not None else p.shape[dp]
    q = jnp.moveaxis(q, dq, 0) if dq is not None else jnp.broadcast_to(q, (size, *q.shape))
    p = jnp.moveaxis(p, dp, 0) if dp is not None else jnp.broadcast_to(p, (size, *p.shape))
    return fused_integrate_p.bind(q, p, dt, *consts, **params), [0, 0]


# 7. lowerings: the reference through XLA everywhere; the generated Triton kernel on CUDA.
def _cuda(q, p, dt, *consts, comp, steps, fast_math):
    from ..codegen import triton as tg

    return list(tg.fused_integrate(comp, q, p, dt, steps, fast_math=fast_math, consts=consts))


# 8. registration
fused_integrate_p.def_impl(lambda *a, **k: _reference(*a, **k))
fused_integrate_p.def_abstract_eval(_abstract)
ad.primitive_jvps[fused_integrate_p] = _jvp
batching.primitive_batchers[fused_integrate_p] = _batch
mlir.register_lowering(fused_integrate_p, mlir.lower_fun(_reference, multiple_results=True))
try:
    mlir.register_lowering(fused_integrate_p, mlir.lower_fun(_cuda, multiple_results=True), platform="cuda")
except (NotImplementedError, ValueError, KeyError):  # no CUDA platform registered in this jax
    pass
