"""The fused-kernel executors: the generated multi-step kernel and the hand-written rigid-body kernel.

Both run as primitives (``fused_integrate``, ``fused_rigid_body``) whose CUDA lowering is the Triton
kernel and whose other lowerings, and derivatives, are the XLA reference; so under ``jax.grad`` they
differentiate like the XLA loop.
"""

from __future__ import annotations

import jax

from .base import AbstractExecutor, preflight


class FusedKernel(AbstractExecutor):
    """The multi-step Triton kernel generated from a canonical splitting's TP-IR (state in registers).

    ``kernel_comp``: the program the kernel runs -- ``comp`` itself, or its per-element form when the flow
    is elementwise over a flat array (``tpjax.codegen.lanes``)."""

    name = "fused_kernel"

    def __init__(self, fast_math: bool = False, kernel_comp=None):
        self.fast_math = fast_math
        self.kernel_comp = kernel_comp

    def run(self, comp, parts, dt, *, steps, save_every=None, adjoint=None, reanchor=None):
        from .fused_integrate import fused_integrate

        preflight(parts, steps, save_every)
        from .xla import resolve_adjoint

        how = resolve_adjoint(adjoint, comp.method)
        kc = self.kernel_comp if self.kernel_comp is not None else comp
        out = fused_integrate(kc, *parts, dt, comp.consts, steps=steps, fast_math=self.fast_math,
                              save_every=save_every, adjoint=how, reanchor=reanchor)  # fmt: skip
        return tuple(out[:2]), None if save_every is None else tuple(out[2:])


class RigidBodyKernel(AbstractExecutor):
    """The hand-written rigid-body kernel (``kernels/rigid_body.py``); saving runs it once per saved state."""

    name = "rigid_body_kernel"

    def __init__(self, fast_math: bool = False):
        self.fast_math = fast_math

    def run(self, comp, parts, dt, *, steps, save_every=None, adjoint=None, reanchor=None):
        from .fused_rigid_body import fused_rigid_body

        preflight(parts, steps, save_every)
        from .xla import resolve_adjoint

        inertia = comp.method.inertia(comp)
        how = resolve_adjoint(adjoint, comp.method)

        def advance(L, n):
            return fused_rigid_body(L, inertia, dt, steps=n, order=comp.method.order, fast_math=self.fast_math,
                                    adjoint=how, reanchor=reanchor)  # fmt: skip

        if save_every is None:
            return (advance(parts[0], steps),), None

        def chunk(L, _):
            L = advance(L, save_every)
            return L, L

        L, saved = jax.lax.scan(chunk, parts[0], None, length=steps // save_every)
        return (L,), (saved,)
