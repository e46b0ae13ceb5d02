"""The one place that touches jax internals, jax-triton and triton versions.

Nothing here imports triton or jax-triton at ``import tpjax`` time: they are optional (the ``gpu`` extra)
and jax-triton even fails to import on a jax without GPU support. Everything else in tpjax asks:

- ``has_triton()`` / ``has_jax_triton()``: can the optional stack be imported here?
- ``cuda_available()``: does jax see a GPU device (i.e. can a Triton kernel actually run)?
- ``triton_call(...)``: jax-triton's ``triton_call`` under one spelling, for jax-triton 0.3.1 (``out_shape=``,
  the pinned version) and 0.4.x (``out_type=``).
- ``lower_text_for_cuda(fn, *args)``: StableHLO text of ``fn`` lowered for CUDA, also on a CPU-only
  machine (needs jax-cuda13-plugin installed; ``JAX_PLATFORMS=cpu`` is fine).

Compute capability on a machine without a GPU (jax-triton 0.3.1): ``triton_call(compute_capability=None)``
(the default) defers the choice to lowering time, where ``jax_triton.triton_lib.get_or_create_triton_kernel``
calls ``triton_kernel_call_lib.get_compute_capability(0)`` (``jaxlib.gpu_triton``). That does ``cuInit`` and
raises ``RuntimeError: ... cuInit(device) failed`` without a GPU. ``lower_text_for_cuda`` therefore swaps,
for the duration of the lowering only, that module reference for a proxy whose ``get_compute_capability``
returns the requested capability (90 = H100 by default); an explicit ``compute_capability=`` given to
``triton_call`` still wins. Patching the lookup rather than the ``triton_call`` argument is deliberate: the
argument is a bind-time parameter, so a jaxpr traced earlier (jit caches traces per function) would keep
``None`` and fail. The swap is not thread-safe; it is meant for tests and debugging.

Side effect to know: importing jax-triton sets ``os.environ["TRITON_CACHE_DIR"] = ""``, after which
``triton.compile`` in the same process fails with "Could not create or locate cache dir". jax-triton's own
compile path never uses that cache, so when the import goes through ``has_jax_triton`` (as everything here
does) the previous value is put back; a direct ``import jax_triton`` elsewhere still clobbers it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax

#: compute capability ``lower_text_for_cuda`` assumes when none is given (NVIDIA H100, sm_90).
DEFAULT_COMPUTE_CAPABILITY = 90


@functools.cache
def _importable(module: str) -> bool:
    cache_dir = os.environ.get("TRITON_CACHE_DIR")  # jax_triton blanks it on import (see module doc)
    try:
        importlib.import_module(module)
    except Exception:  # any failure (ImportError, a CUDA plugin's RuntimeError) means "not usable here"
        return False
    finally:
        if cache_dir is None:
            os.environ.pop("TRITON_CACHE_DIR", None)
        else:
            os.environ["TRITON_CACHE_DIR"] = cache_dir
    return True


def has_triton() -> bool:
    """True when ``triton`` imports (it compiles kernels even without a GPU)."""
    return _importable("triton")


def has_jax_triton() -> bool:
    """True when ``jax_triton`` imports (needs triton and GPU-enabled jax, e.g. jax-cuda13-plugin)."""
    return _importable("jax_triton")


@functools.cache
def cuda_available() -> bool:
    """True when jax has a GPU device, i.e. Triton kernels can run (not just be lowered)."""
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:  # "Unknown backend: 'gpu' requested", e.g. JAX_PLATFORMS=cpu or no CUDA
        return False


def _jax_triton():
    if not has_jax_triton():
        raise ImportError(
            "jax_triton is not importable: install the gpu extra (pip install 'tpjax[gpu]'), which pins "
            "triton 3.6.0, jax-triton 0.3.1 and jax-cuda13-plugin 0.11.2."
        )
    return importlib.import_module("jax_triton")


@functools.cache
def _out_keyword() -> str:
    """``out_shape`` for jax-triton 0.3.x, ``out_type`` for 0.4.x (renamed there)."""
    params = inspect.signature(_jax_triton().triton_call).parameters
    return "out_type" if "out_type" in params else "out_shape"


def triton_call(*args: Any, kernel: Any, out_shape: Any, grid: Any, **kw: Any) -> Any:
    """Call a ``@triton.jit`` kernel on jax arrays through jax-triton, whatever its version.

    Args:
      *args: kernel operands in kernel-signature order: arrays become pointers, Python ints/floats become
        scalars (jax-triton turns an int equal to 1 into a constexpr). Output pointers follow them.
      kernel: the ``triton.JITFunction``.
      out_shape: one object or a pytree of objects with ``.shape`` and ``.dtype`` (arrays, tracers,
        ``jax.ShapeDtypeStruct``); normalised to ``jax.ShapeDtypeStruct`` here.
      grid: int, tuple of up to 3 ints, or ``lambda meta: tuple`` of the constexpr metaparameters.
      **kw: jax-triton options (``input_output_aliases``, ``zeroed_outputs``, ``num_warps``,
        ``compute_capability``, ``enable_fp_fusion``, ...) and the kernel's constexprs by name.
    Returns:
      The outputs, in the structure of ``out_shape``. No vmap or autodiff rule: tpjax primitives own those.
    """
    out = jax.tree.map(lambda a: jax.ShapeDtypeStruct(tuple(a.shape), a.dtype), out_shape)
    return _jax_triton().triton_call(*args, kernel=kernel, grid=grid, **{_out_keyword(): out}, **kw)


@contextlib.contextmanager
def _assume_compute_capability(cc: int) -> Iterator[None]:
    """While active, jax-triton lowerings with ``compute_capability=None`` target ``cc`` (see module doc)."""
    lib = importlib.import_module("jax_triton.triton_lib")
    real = getattr(lib, "triton_kernel_call_lib", None)  # jaxlib.gpu_triton, as bound in jax-triton 0.3.1
    if real is None:  # another jax-triton layout: lower unpatched (pass compute_capability= explicitly)
        yield
        return

    class _FixedCapability:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def get_compute_capability(device: int) -> int:
            del device
            return cc

    lib.triton_kernel_call_lib = _FixedCapability()
    try:
        yield
    finally:
        lib.triton_kernel_call_lib = real


def lower_text_for_cuda(
    fn: Callable[..., Any], *args: Any, compute_capability: int = DEFAULT_COMPUTE_CAPABILITY
) -> str:
    """Lower ``jax.jit(fn)(*args)`` for CUDA and return the StableHLO text; needs no GPU.

    Triton kernels called inside ``fn`` are really compiled (to PTX for ``compute_capability``, default
    90) and appear as ``stablehlo.custom_call @triton_kernel_call``. ``args`` may be arrays or
    ``jax.ShapeDtypeStruct``. Requires jax-cuda13-plugin (the CUDA lowering rules) when ``fn`` calls
    jax-triton; plain jnp code lowers with jax alone.
    """
    traced = jax.jit(fn).trace(*args)
    if not has_jax_triton():
        return traced.lower(lowering_platforms=("cuda",)).as_text()
    with _assume_compute_capability(compute_capability):
        return traced.lower(lowering_platforms=("cuda",)).as_text()


def eval_context():
    """A context in which jax operations run (and jitted functions compile and run) eagerly even inside an
    outer trace, so values that depend only on concrete data come out concrete. Faster than
    ``jax.ensure_compile_time_eval`` for a jitted call (one compile instead of op-by-op dispatch)."""
    from jax._src import core

    return core.eval_context()
