"""POISSON_J: turn a gradient into a flow, f = J(z) g (TP-IR op ``POISSON_J``).

``kind`` (static; printed as ``type=``) selects J: ``PASS`` (f = +g, the qdot = dH/dp half of canonical J), ``NEGATE``
(f = -g, pdot = -dH/dq), ``LIE`` (so(3)*: f = [L]x g written as the 3x3 matrix product, the form that
the ``lie_cross`` pass rewrites into LIE_CROSS) and ``MATRIX`` (f = J g for a (..., n, n) operand J).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ..ir.ops import POISSON_TYPES
from ._common import broadcast_batcher, broadcast_shapes, is_undefined, result_dtype, shaped, zero_tangent
from ._cuda import register_cuda
from ._sharding import same_axes, typed

# 1. primitive
poisson_j_p = Primitive("tp_poisson_j")


# 2. public wrapper
def poisson_j(g, structure=None, *, kind: str, impl: str = "xla"):
    """Apply the Poisson tensor ``kind`` to gradient ``g``; ``structure`` is L (LIE) or J (MATRIX)."""
    if kind not in POISSON_TYPES:
        raise ValueError(f"poisson_j: kind must be one of {POISSON_TYPES}, got {kind!r}")
    if (kind in ("LIE", "MATRIX")) != (structure is not None):
        raise TypeError(f"poisson_j: kind={kind} {'needs' if structure is None else 'takes no'} structure")
    return poisson_j_p.bind(*same_axes(g, *(() if structure is None else (structure,))), kind=kind, impl=impl)


# 3. abstract eval
def _abstract(g, *s, kind, impl="xla"):
    if kind in ("PASS", "NEGATE"):
        return shaped(g.shape, g.dtype)
    if kind == "LIE":
        if g.shape[-1:] != (3,) or s[0].shape[-1:] != (3,):
            raise TypeError(f"POISSON_J type=LIE needs (..., 3) operands, got {g.shape} and {s[0].shape}")
        return shaped(broadcast_shapes(g.shape, s[0].shape), result_dtype(g, s[0]))
    n = g.shape[-1]
    if s[0].shape[-2:] != (n, n):
        raise TypeError(f"POISSON_J type=MATRIX needs J of shape (..., {n}, {n}), got {s[0].shape}")
    return shaped(broadcast_shapes(g.shape, s[0].shape[:-1]), result_dtype(g, s[0]))


def hat(L):
    """[L]x as a (..., 3, 3) matrix: hat(L) @ g == cross(L, g)."""
    z = jnp.zeros_like(L[..., 0])
    rows = ((z, -L[..., 2], L[..., 1]), (L[..., 2], z, -L[..., 0]), (-L[..., 1], L[..., 0], z))
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


# 4. impl
def _impl(g, *s, kind, impl="xla"):
    if kind == "PASS":
        return g
    if kind == "NEGATE":
        return -g
    J = hat(s[0]) if kind == "LIE" else s[0]
    out = jnp.einsum("...ij,...j->...i", J, g)
    return out.astype(_abstract(jax.typeof(g), *map(jax.typeof, s), kind=kind, impl=impl).dtype)


# 5. JVP and transpose. LIE: f = L x g is bilinear; d f = L x dg + dL x g.
def _jvp(primals, tangents, *, kind, impl):
    f = poisson_j_p.bind(*primals, kind=kind, impl=impl)
    if kind in ("PASS", "NEGATE"):
        t = tangents[0]
        return f, (zero_tangent(f) if type(t) is ad.Zero else poisson_j_p.bind(t, kind=kind, impl=impl))
    (g, s), (tg, ts) = primals, tangents
    parts = []
    if type(tg) is not ad.Zero:
        parts.append(poisson_j_p.bind(tg, s, kind=kind, impl=impl))
    if type(ts) is not ad.Zero:
        parts.append(poisson_j_p.bind(g, ts, kind=kind, impl=impl))
    if not parts:
        return f, zero_tangent(f)
    from .acc_grad import acc_grad

    return f, parts[0] if len(parts) == 1 else acc_grad(parts[0], parts[1])


def _transpose(ct, g, *s, kind, impl):
    from ._common import unbroadcast
    from .elem import elem

    if type(ct) is ad.Zero:
        return [None] * (1 + len(s))
    if kind in ("PASS", "NEGATE"):
        return [poisson_j_p.bind(ct, kind=kind, impl=impl)]
    (s,) = s
    if is_undefined(g) and is_undefined(s):
        raise ValueError("POISSON_J is not linear when both g and its structure are tangents")
    if kind == "LIE":  # <ct, L x dg> = <dg, ct x L>;  <ct, dL x g> = <dL, g x ct>
        ct_g = poisson_j_p.bind(ct, elem("neg", s), kind="LIE", impl=impl) if is_undefined(g) else None
        ct_s = poisson_j_p.bind(ct, g, kind="LIE", impl=impl) if is_undefined(s) else None
    else:  # MATRIX: f = J g;  dg <- J^T ct,  dJ <- ct g^T
        ct_g = jnp.einsum("...ji,...j->...i", s, ct) if is_undefined(g) else None
        ct_s = jnp.einsum("...i,...j->...ij", ct, g) if is_undefined(s) else None
    ct_g = None if ct_g is None else unbroadcast(ct_g, g.aval.shape)
    ct_s = None if ct_s is None else unbroadcast(ct_s, s.aval.shape)
    return [ct_g, ct_s]


# 6. batching: canonical types pass the batch axis through; LIE / MATRIX align ranks like numpy.
_bcast = broadcast_batcher(poisson_j_p)


def _batch(args, dims, *, kind, impl):
    if kind in ("PASS", "NEGATE"):
        return poisson_j_p.bind(args[0], kind=kind, impl=impl), dims[0]
    if kind == "MATRIX" and dims[1] is not None and dims[0] is None:
        g, J = args
        J = jnp.moveaxis(J, dims[1], 0)
        return poisson_j_p.bind(jnp.broadcast_to(g, J.shape[:-1]), J, kind=kind, impl=impl), 0
    if kind == "MATRIX":
        g, J = jnp.moveaxis(args[0], dims[0], 0), args[1]
        if dims[1] is not None:
            J = jnp.moveaxis(J, dims[1], 0)
            lead = max(g.ndim, J.ndim - 1)
            g = g.reshape(g.shape[:1] + (1,) * (lead - g.ndim) + g.shape[1:])
            J = J.reshape(J.shape[:1] + (1,) * (lead - J.ndim + 1) + J.shape[1:])
        return poisson_j_p.bind(g, J, kind=kind, impl=impl), 0
    return _bcast(args, dims, kind=kind, impl=impl)


# 7. lowering: the reference through XLA (the CUDA path lowers LIE_CROSS / POISSON_J via Triton).
# 8. registration
poisson_j_p.def_impl(_impl)
poisson_j_p.def_abstract_eval(typed(_abstract, _impl))  # keeps a mesh sharding (_sharding.py)
ad.primitive_jvps[poisson_j_p] = _jvp
ad.primitive_transposes[poisson_j_p] = _transpose
batching.primitive_batchers[poisson_j_p] = _batch
mlir.register_lowering(poisson_j_p, mlir.lower_fun(_impl, multiple_results=False))
register_cuda(poisson_j_p, _impl, "poisson_j")
