"""Hand-written Triton kernels for the TP-IR ops POISSON_J, SYMP_STEP, LIE_CROSS and RIGID_BODY, and the
bounded-argument sin/cos the generated kernels call (README.md).

One module per op; each offers ``@triton.jit`` device functions (inlined by generated kernels), standalone
``*_kernel`` functions over flat buffers and ``*_call`` launchers for a ``jax_triton.triton_call``-like
function. Import from the modules (``from kernels.symp_step import symp_step``): the package re-exports
no functions, because ``symp_step`` and ``lie_cross`` name both a module and its device function.
The modules import only ``triton``, ``triton.language`` and each other; importing them needs triton.
In the wheel this package is ``tpjax.kernels``.
"""

from . import lie_cross, poisson_j, rigid_body, symp_step, trig

#: every standalone kernel, by name (the compile tests iterate over it).
KERNELS = {
    "symp_step_kernel": symp_step.symp_step_kernel,
    "poisson_j_canonical_kernel": poisson_j.poisson_j_canonical_kernel,
    "poisson_j_lie_kernel": poisson_j.poisson_j_lie_kernel,
    "lie_cross_kernel": lie_cross.lie_cross_kernel,
    "rigid_body_kernel": rigid_body.rigid_body_kernel,
}

__all__ = ["KERNELS", "lie_cross", "poisson_j", "rigid_body", "symp_step", "trig"]
