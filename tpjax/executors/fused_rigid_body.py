"""FUSED_RIGID_BODY: a free-rigid-body ensemble run, ``steps`` explicit splitting steps, as one primitive.

On CUDA it lowers to the hand-written multi-step kernel ``kernels/rigid_body.py`` (exact axis rotations,
L in registers, only the final L written); elsewhere, for every derivative and whenever the inertia or dt
is batched, to the reference: a ``lax.scan`` of ``tpjax.integrators.rigid_body.rigid_body_strang`` (order
2) or ``rigid_body_order4`` (order 4) over the flattened (N, 3) ensemble. The primitive owns what
triton_call lacks: batching (a vmapped L folds into the ensemble) and differentiation (JVP of the reference;
reverse mode transposes that).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from ..primitives._cuda import register_lowerings
from ..primitives._sharding import like
from .sharding import per_shard

# 1. primitive
fused_rigid_body_p = Primitive("tp_fused_rigid_body")


# 2. public wrapper
def fused_rigid_body(
    L,
    inertia,
    dt,
    *,
    steps: int,
    order: int = 2,
    fast_math: bool = False,
    adjoint: str = "guarded",
    reanchor: int | None = None,
):
    """L after ``steps`` steps of the explicit Lie-Poisson splitting for H = sum_i L_i^2 / (2 I_i).

    Properties: Poisson map, |L|^2 preserved to roundoff, symmetric; order 2 (Strang: R1(dt/2) R2(dt/2)
    R3(dt) R2(dt/2) R1(dt/2)) or 4 (Yoshida triple jump). Works under jit, vmap and grad (derivatives from
    the XLA reference).
    Args: L: (..., 3) float array (every leading index is one body); inertia: (3,) principal moments > 0;
      dt: scalar step; steps: int >= 0 (static); order: 2 or 4; fast_math: float32 only, approximate
      sin/cos in the CUDA kernel (ignored by the XLA path).
    Returns: an array like L. On CUDA: one Triton kernel; elsewhere: XLA.
    """
    L = jnp.asarray(L)
    if not jnp.issubdtype(L.dtype, jnp.floating) or L.ndim == 0 or L.shape[-1] != 3:
        raise ValueError(f"fused_rigid_body: L is {L.dtype}{L.shape}, expected a float array of shape (..., 3).")
    if order not in (2, 4) or int(steps) < 0:
        raise ValueError(f"fused_rigid_body: order must be 2 or 4 and steps >= 0, got {order}, {steps}.")
    if fast_math and L.dtype != jnp.float32:
        raise ValueError(f"fused_rigid_body: fast_math is float32 only, L is {L.dtype}.")
    inertia = jnp.asarray(inertia, L.dtype)
    if inertia.shape != (3,):
        raise ValueError(f"fused_rigid_body: inertia has shape {inertia.shape}, expected (3,).")
    dt = jnp.asarray(dt, L.dtype)
    if dt.shape != ():
        raise ValueError(f"fused_rigid_body: dt has shape {dt.shape}, expected ().")
    return fused_rigid_body_p.bind(L, inertia, dt, steps=int(steps), order=int(order), fast_math=bool(fast_math),
                                   adjoint=adjoint, reanchor=reanchor)  # fmt: skip


# 3. abstract eval
def _abstract(L, inertia, dt, *, steps, order, fast_math, adjoint, reanchor):
    return like(L, (inertia, dt))  # laid out like L: a mesh sharding, shard_map's manual axes


# 4. impl: the reference path over the flattened ensemble
def _reference(L, inertia, dt, *, steps, order, fast_math, adjoint, reanchor):
    from ..adjoint import solve
    from ..integrators.rigid_body import rigid_body_order4, rigid_body_strang

    f = rigid_body_order4 if order == 4 else rigid_body_strang
    step = lambda params, z, dt: (f(z[0], dt, params[0]),)
    flat = L.reshape(-1, 3)  # adjoint.solve casts the loop carry to the state's mesh axes (shard_map)
    out = solve(step, (flat,), dt, (inertia,), steps=steps, adjoint=adjoint, reanchor=reanchor)[0]
    return out.reshape(L.shape)


# 5. JVP: the reference path's; no transpose (not linear).
def _jvp(primals, tangents, **params):
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    out = fused_rigid_body_p.bind(*primals, **params)
    _, t_out = jax.jvp(lambda *xs: _reference(*xs, **params), tuple(primals), tuple(tangents))
    return out, t_out


# 6. batching: a batched L folds into the ensemble; a batched inertia or dt takes the vmapped reference.
# A sharded ensemble runs per shard (sharding.per_shard): each device's kernel sees only its bodies.
def _batch(args, dims, **params):
    L, inertia, dt = args
    dL, di, ddt = dims
    if di is not None or ddt is not None:
        return jax.vmap(lambda *xs: _reference(*xs, **params), in_axes=tuple(dims))(*args), 0
    bind = lambda *xs: [fused_rigid_body_p.bind(*xs, **params)]
    return per_shard(bind, [jnp.moveaxis(L, dL, 0)], [inertia, dt], (False,))[0], 0  # sharding.py


# 7. lowerings: the reference through XLA everywhere; the hand-written Triton kernel on CUDA.
def _cuda(L, inertia, dt, *, steps, order, fast_math, adjoint, reanchor):
    if (
        L.size == 0
        or steps == 0
        or str(L.dtype) not in ("float32", "float64")
        or inertia.shape != (3,)
        or dt.size != 1
        or 3 * L.size >= 2**31  # int32 offsets in the kernel
    ):
        return _reference(L, inertia, dt, steps=steps, order=order, fast_math=fast_math, adjoint=adjoint,
                          reanchor=reanchor)  # fmt: skip
    from .. import _compat
    from ..primitives._cuda import kernel_module

    k = kernel_module("rigid_body")
    flat = L.reshape(-1, 3)
    fast = fast_math and L.dtype == jnp.float32
    inertia, dt = inertia.astype(L.dtype), dt.astype(L.dtype).reshape(())
    out = k.rigid_body_call(_compat.triton_call, flat, inertia, dt, steps=steps, order=order, fast_math=fast)
    return out.reshape(L.shape)


# 8. registration
fused_rigid_body_p.def_impl(lambda *a, **k: _reference(*a, **k))
fused_rigid_body_p.def_abstract_eval(_abstract)
ad.primitive_jvps[fused_rigid_body_p] = _jvp
batching.primitive_batchers[fused_rigid_body_p] = _batch
register_lowerings(fused_rigid_body_p, _reference, _cuda, multiple_results=False)
