"""The CUDA lowering of ``primitives.fused_loop``: the body traced per lane (``frontend.loop_body``), written
as a fused-loop Triton kernel (``codegen.triton_loop``) and launched over the flattened lanes.

``register()`` (run when ``tpjax.executors`` is imported) adds ``launch`` to
``primitives.fused_loop.CUDA_LAUNCHERS``; a body the generator refuses (an OPAQUE op it cannot write, an
integer operand, more than ``MAX_STATEMENTS`` statements) returns None, and the primitive lowers its XLA
reference instead; a defect inside the generator does the same with a RuntimeWarning (as
``executors.choice.kernel_for`` does for the step kernel). Sources are generated once per body and
per-lane avals (``kernel_source``).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..codegen.triton_loop import KERNEL_NAME, generate_loop


@functools.lru_cache(maxsize=128)
def _source(body, carry, invariants, lane_invariants, inject_into, inject_mode, save) -> tuple[bool, str]:
    from ..frontend.loop_body import loop_program

    try:
        lp = loop_program(body, carry, invariants)
        return True, generate_loop(lp, lane_invariants, inject_into, inject_mode=inject_mode, save=save)
    except NotImplementedError as e:
        return False, str(e)
    except Exception as e:  # a defect of the generator: say so loudly, lower the (correct) XLA reference
        why = f"the fused-loop kernel generator failed ({type(e).__name__}: {e}); please report it"
        warnings.warn(f"tpjax: {why}; running the XLA loop", RuntimeWarning, stacklevel=2)
        return False, why


def kernel_source(body, carry_avals, inv_avals, *, lanes: int, lane_invariants, inject_into=(),
                  inject_mode="add", save=False) -> tuple[bool, str]:  # fmt: skip
    """(True, kernel source) or (False, why not) for operands with these avals (lane axes included);
    ``save``: the kernel that also writes the saved rows (``fused_loop``'s ``save_every``)."""
    import jax

    sds = lambda a, k: jax.ShapeDtypeStruct(tuple(a.shape[k:]), a.dtype)
    carry = tuple(sds(a, lanes) for a in carry_avals)
    inv = tuple(sds(a, lanes if lane else 0) for a, lane in zip(inv_avals, lane_invariants, strict=True))
    return _source(body, carry, inv, tuple(lane_invariants), tuple(inject_into), inject_mode, bool(save))


BLOCK = 128


def launch(ops, *, body, nc, n_max, lanes, lane_invariants, masked, unroll, inject_into, inject_every, inject_mode,
           save_every):  # fmt: skip
    """The fused-loop kernel on the operands of one ``fused_loop_p`` (flattened lanes), or None."""
    import jax
    import jax.numpy as jnp

    from .. import _compat
    from ..codegen.triton import load_kernel
    from ..primitives.fused_loop import split

    carry, inv, inj, m0, n = split(ops, nc, inject_into)
    save = save_every is not None
    ok, src = kernel_source(body, carry, inv, lanes=lanes, lane_invariants=lane_invariants, inject_into=inject_into,
                            inject_mode=inject_mode, save=save)  # fmt: skip
    N = int(np.prod(carry[0].shape[:lanes], dtype=np.int64)) if carry else 0
    if not ok or N == 0 or not _compat.has_jax_triton():
        return None
    kern = load_kernel(src, KERNEL_NAME)
    trips = jnp.clip(n, 0, n_max).astype(jnp.int32).reshape(())
    extra = [*(x.reshape(-1) for x in inj), jnp.asarray(m0, jnp.int32).reshape(())] if inject_into else []
    scalars = [N, int(inject_every)] if inject_into else [N, int(save_every)] if save else [N]
    rows = -(-n_max // save_every) if save else 0
    saved = [jax.ShapeDtypeStruct((rows * x.size,), x.dtype) for x in carry] if save else []
    outs = _compat.triton_call(
        *(x.reshape(-1) for x in (*carry, *inv)), *extra, trips, *scalars, kernel=kern,
        out_shape=[*(x.reshape(-1) for x in carry), *saved], grid=((N + BLOCK - 1) // BLOCK,), num_warps=4,
        BLOCK=BLOCK, FAST_MATH=False,
    )  # fmt: skip
    shapes = [x.shape for x in carry] + [(rows, *x.shape) for x in carry] * save
    return [o.reshape(s) for o, s in zip(outs, shapes, strict=True)]


def has_kernel(body, carry, invariants, *, lanes, lane_invariants, inject_into=(), inject_mode="add") -> bool:
    return kernel_source(body, carry, invariants, lanes=lanes, lane_invariants=lane_invariants,
                         inject_into=inject_into, inject_mode=inject_mode)[0]  # fmt: skip


def register() -> None:
    from ..primitives import fused_loop

    if launch not in fused_loop.CUDA_LAUNCHERS:
        fused_loop.CUDA_LAUNCHERS.append(launch)
    if has_kernel not in fused_loop.CUDA_KERNEL_CHECKS:
        fused_loop.CUDA_KERNEL_CHECKS.append(has_kernel)


register()
