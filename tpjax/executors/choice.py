"""The executor choice shared by ``integrate`` and ``trajectory``, validated once."""

from __future__ import annotations

import warnings

import jax

from .base import AbstractExecutor
from .kernel import FusedKernel, RigidBodyKernel
from .xla import XlaLoop

BACKENDS = ("auto", "xla", "triton")


def kernel_for(comp, fast_math: bool) -> tuple[AbstractExecutor | None, str | None]:
    """The fused-kernel executor that can run ``comp`` and None, or None and the reason none can."""
    from ..integrators.base import Splitting
    from ..integrators.lie import RigidBodySplitting

    if comp.precision is not None:
        return None, "the fused kernels run one dtype and no Precision policy; use backend='xla'"
    if isinstance(comp.method, RigidBodySplitting):
        return RigidBodyKernel(fast_math), None  # kernels/rigid_body.py
    if not (comp.structure.canonical and isinstance(comp.method, Splitting)):
        return None, "the fused kernels cover canonical splittings and the so3 rigid-body splitting"
    from ..codegen import triton as tg
    from ..codegen.lanes import lanes

    per_element = lanes(comp)  # an elementwise flow: one system per array element (no vmap needed)
    for kernel_comp in (per_element, comp) if per_element is not None else (comp,):
        try:
            src = tg.generate(kernel_comp)
            if "form=tile" in src.splitlines()[1]:
                error = tg.compile_error(src, _capability())
                if error:
                    raise NotImplementedError(f"Triton does not compile the tile-form kernel ({error})")
        except (NotImplementedError, ImportError) as e:
            why = str(e)
            continue
        except Exception as e:  # a defect of the generator: say so loudly, run the (correct) XLA loop
            why = f"the kernel generator failed ({type(e).__name__}: {e}); please report it"
            warnings.warn(f"tpjax: {why}; running the XLA loop", RuntimeWarning, stacklevel=3)
            continue
        return FusedKernel(fast_math, kernel_comp), None
    return None, why


def _capability() -> int:
    """The CUDA compute capability kernels are built for: the GPU's, or sm_90 (H100/H200) when the default
    backend is not a GPU (a cross-lowering from a CPU host)."""
    if jax.default_backend() != "gpu":
        return 90
    try:
        dev = jax.devices("gpu")[0]
        major, minor = str(dev.compute_capability).split(".")
        return int(major) * 10 + int(minor)
    except Exception:  # a GPU without a "major.minor" capability string: check the build for an H100/H200
        return 90


def on_cuda() -> bool:
    """Is the default backend a CUDA GPU that jax-triton can launch kernels on?"""
    from .. import _compat

    return _compat.has_jax_triton() and jax.default_backend() == "gpu"


def choose(comp, backend: str = "auto", fast_math: bool = False, *, at_lowering: bool = True) -> AbstractExecutor:
    """The executor for ``comp``: "xla" the XLA loop; "triton" a fused kernel on CUDA (or a clear error);
    "auto" the fused-kernel executor whenever one applies to the program, else the XLA loop.

    The fused executors run one primitive whose CUDA lowering is the Triton kernel and whose every other
    lowering (and every derivative) is the XLA loop with the requested adjoint, so under "auto" the
    platform is decided when the call is lowered: a CUDA cross-lowering (``jax.export`` for cuda, or
    ``lower(lowering_platforms=("cuda",))``) from a CPU host shows the kernel a GPU would run. With
    ``at_lowering=False`` "auto" picks a kernel only when the default backend is CUDA (for callers that need
    what only the XLA loop returns, e.g. the carried registers of a resumable trajectory)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {BACKENDS}")
    if not isinstance(fast_math, bool):
        raise TypeError(f"fast_math must be True or False, got {fast_math!r}")
    if fast_math and backend == "xla":
        raise ValueError("fast_math=True needs the Triton kernel; use backend='triton' or 'auto' on CUDA")
    if backend == "xla":
        return XlaLoop()
    executor, why = kernel_for(comp, fast_math)
    if (backend == "triton" or fast_math or not at_lowering) and not why and not on_cuda():
        why = "no CUDA GPU with jax-triton"
    if backend == "triton" and why:
        raise NotImplementedError(f"backend='triton' cannot run this program: {why}; use backend='xla'")
    if fast_math and why:
        raise ValueError(f"fast_math=True needs the fused Triton kernel, which cannot run here: {why}")
    return XlaLoop() if why else executor
