"""Which executor runs a compiled program: the fused Triton kernels on CUDA, or XLA."""

from __future__ import annotations

import jax

from .compiler import Compiled

BACKENDS = ("auto", "xla", "triton")


def fused_ok(comp: Compiled) -> str | None:
    """None when the fused Triton kernel can run ``comp``, else the reason it cannot."""
    from .integrators.base import Splitting
    from .integrators.lie import RigidBodySplitting

    if comp.structure == "so3" and isinstance(comp.method, RigidBodySplitting):
        return None  # kernels/rigid_body.py
    if comp.structure != "canonical" or not isinstance(comp.method, Splitting):
        return "the fused kernel covers canonical splittings and the so3 rigid-body splitting"
    try:
        from .codegen import triton as tg

        tg.generate(comp)
    except (NotImplementedError, ImportError) as e:
        return str(e)
    return None


def use_triton(comp: Compiled, backend: str, fast_math: bool) -> bool:
    from . import _compat

    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {BACKENDS}")
    if fast_math and backend == "xla":
        raise ValueError("fast_math=True needs the Triton kernel; use backend='triton' or 'auto' on CUDA")
    if backend == "xla":
        return False
    on_cuda = _compat.has_jax_triton() and jax.default_backend() == "gpu"
    why = fused_ok(comp) if on_cuda else "no CUDA GPU with jax-triton"
    if backend == "triton" and why:
        raise NotImplementedError(f"backend='triton' cannot run this program: {why}; use backend='xla'")
    if fast_math and why:
        raise ValueError(f"fast_math=True needs the fused Triton kernel, which cannot run here: {why}")
    return why is None
