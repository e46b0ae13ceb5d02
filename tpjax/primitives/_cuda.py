"""CUDA lowerings of POISSON_J, SYMP_STEP and LIE_CROSS through the hand-written Triton kernels.

A primitive's static ``impl`` parameter picks the lowering on CUDA: "xla" (the reference, which XLA fuses
with its neighbours: usually fastest for one op) or "triton" (kernels/*.py through jax_triton). vmap needs
nothing here: the batching rules bind the primitive on the batched arrays, which the kernel sees flat.
Cases a kernel does not cover (a per-member dt, POISSON_J type=MATRIX, mixed dtypes) lower through XLA.
"""

from __future__ import annotations

import importlib

import jax.numpy as jnp
from jax.interpreters import mlir


def kernel_module(name: str):
    """``kernels/<name>.py``: inside the wheel as tpjax.kernels, in a source tree as top-level kernels."""
    try:
        return importlib.import_module(f"tpjax.kernels.{name}")
    except ImportError:
        return importlib.import_module(f"kernels.{name}")


def _flat(x, shape, dtype):
    return jnp.broadcast_to(x.astype(dtype), shape).reshape(-1)


def _symp_step(s, f, dt, *, coef, impl, fallback):
    shape, dtype = jnp.broadcast_shapes(s.shape, f.shape, dt.shape), s.dtype
    if dt.size != 1 or shape != s.shape:
        return fallback(s, f, dt, coef=coef)
    from .. import _compat

    k = kernel_module("symp_step")
    out = k.symp_step_call(_compat.triton_call, _flat(s, shape, dtype), _flat(f, shape, dtype),
                           dt.astype(dtype).reshape(()), coef=coef)  # fmt: skip
    return out.reshape(shape)


def _poisson_j(g, *st, kind, impl, fallback):
    from .. import _compat

    k = kernel_module("poisson_j")
    if kind in ("PASS", "NEGATE"):
        return k.poisson_j_call(_compat.triton_call, g.reshape(-1), type=kind).reshape(g.shape)
    if kind == "LIE" and st[0].dtype == g.dtype:
        shape = jnp.broadcast_shapes(g.shape, st[0].shape)
        L, gg = (jnp.broadcast_to(x, shape).reshape(-1, 3) for x in (st[0], g))
        return k.poisson_j_lie_call(_compat.triton_call, L, gg).reshape(shape)
    return fallback(g, *st, kind=kind)


def _lie_cross(L, g, *, impl, fallback):
    from .. import _compat

    if L.dtype != g.dtype:
        return fallback(L, g)
    shape = jnp.broadcast_shapes(L.shape, g.shape)
    L, g = (jnp.broadcast_to(x, shape).reshape(-1, 3) for x in (L, g))
    return kernel_module("lie_cross").lie_cross_call(_compat.triton_call, L, g).reshape(shape)


_TRITON = {"symp_step": _symp_step, "poisson_j": _poisson_j, "lie_cross": _lie_cross}


def register_cuda(prim, reference, name: str) -> None:
    """Register ``prim``'s CUDA lowering (impl="triton" -> kernel, else the reference through XLA).
    Does nothing when jax has no CUDA platform registered (registering for an unknown platform raises)."""
    triton_fn = _TRITON[name]

    def rule(ctx, *args, impl="xla", **params):
        if impl == "triton":
            fn = lambda *xs: triton_fn(*xs, impl=impl, fallback=reference, **params)
        else:
            fn = lambda *xs: reference(*xs, **params)
        return mlir.lower_fun(fn, multiple_results=False)(ctx, *args)

    try:
        mlir.register_lowering(prim, rule, platform="cuda")
    except (NotImplementedError, ValueError, KeyError):
        pass


def register_lowerings(prim, reference, cuda, *, multiple_results: bool) -> None:
    """``reference`` through XLA on every platform, ``cuda`` (a Triton launch) on CUDA when jax has it."""
    mlir.register_lowering(prim, mlir.lower_fun(reference, multiple_results=multiple_results))
    try:
        mlir.register_lowering(prim, mlir.lower_fun(cuda, multiple_results=multiple_results), platform="cuda")
    except (NotImplementedError, ValueError, KeyError):  # no CUDA platform registered in this jax
        pass
