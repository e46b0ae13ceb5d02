"""LIE_CROSS: the so(3)* Lie-Poisson flow as a cross product, ``f = L x g``.

This is what the ``lie_cross`` pass rewrites ``POISSON_J(type=LIE)`` into: 6 multiplies and 3 subtractions
instead of the 3x3 matrix product ``[L]x g`` (9 multiplies, 6 additions; see ``poisson_j_lie``).
``lie_cross`` is the device function, ``lie_cross_kernel`` the standalone kernel, ``lie_cross_call`` the
launcher. ``load3`` / ``store3`` move one (n, 3) row-major operand and are shared with ``poisson_j``.
"""

import triton
import triton.language as tl

from .symp_step import check_float, numel

#: default systems per program.
BLOCK = 256


@triton.jit
def lie_cross(l0, l1, l2, g0, g1, g2):
    """Return ``(f0, f1, f2) = L x g`` on register values: exactly 6 multiplies and 3 subtractions.

    Args: six tensors of one shape and dtype (float32 or float64), the components of L and of g.
    Returns: three tensors like ``l0``. With fp-fusion on, the backend contracts each component to one
      ``mul`` + one ``fma`` (``l1*g2 - l2*g1 = fma(l1, g2, -(l2*g1))``); the Triton IR keeps 6 mul + 3 sub.
    """
    f0 = l1 * g2 - l2 * g1
    f1 = l2 * g0 - l0 * g2
    f2 = l0 * g1 - l1 * g0
    return f0, f1, f2


@triton.jit
def load3(ptr, rows, mask):
    """Load the three components of rows ``rows`` of a contiguous row-major (n, 3) buffer.

    Component k of system i lives at ``ptr + 3*i + k``; ``mask`` guards every load (masked lanes are
    undefined and must not be stored). Returns three tensors shaped like ``rows``.
    """
    base = ptr + 3 * rows
    return tl.load(base, mask=mask), tl.load(base + 1, mask=mask), tl.load(base + 2, mask=mask)


@triton.jit
def store3(ptr, rows, mask, v0, v1, v2):
    """Store ``(v0, v1, v2)`` to rows ``rows`` of a contiguous row-major (n, 3) buffer, masked."""
    base = ptr + 3 * rows
    tl.store(base, v0, mask=mask)
    tl.store(base + 1, v1, mask=mask)
    tl.store(base + 2, v2, mask=mask)


@triton.jit
def lie_cross_kernel(l_ptr, g_ptr, n, f_ptr, BLOCK: tl.constexpr):
    """``f[i, :] = L[i, :] x g[i, :]`` for ``0 <= i < n`` systems.

    Pointers: ``l_ptr``, ``g_ptr``, ``f_ptr`` -> contiguous row-major (n, 3) buffers of one dtype,
      float32 or float64 (structure-of-arrays is not assumed): component k of system i at offset 3*i+k.
      ``f_ptr`` must not overlap the inputs (a component store may be scheduled before another
      component's load).
    n: int32 number of systems, n >= 1 and 3*n < 2**31.
    Grid: ``(cdiv(n, BLOCK),)``; program p covers systems ``[p*BLOCK, (p+1)*BLOCK)``, every load and store
      masked by ``i < n`` so any n works. BLOCK: power-of-two constexpr.
    """
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < n
    l0, l1, l2 = load3(l_ptr, rows, mask)
    g0, g1, g2 = load3(g_ptr, rows, mask)
    f0, f1, f2 = lie_cross(l0, l1, l2, g0, g1, g2)
    store3(f_ptr, rows, mask, f0, f1, f2)


def rows_grid(n):
    """The grid function for ``n`` systems (jax-triton calls it with the constexpr metaparameters)."""
    return lambda meta: (triton.cdiv(n, meta["BLOCK"]),)


def check_rows(caller, l, g):
    """Check two (..., 3) operands of one shape and float dtype; return the number of systems n."""
    check_float("L", l)
    if tuple(g.shape) != tuple(l.shape) or g.dtype != l.dtype:
        raise ValueError(f"{caller}: g is {g.dtype}{tuple(g.shape)}, expected L's {l.dtype}{tuple(l.shape)}.")
    if len(l.shape) == 0 or int(l.shape[-1]) != 3:
        raise ValueError(f"{caller}: L has shape {tuple(l.shape)}, expected (..., 3).")
    return numel(l.shape) // 3


def lie_cross_call(call, l, g, *, block=BLOCK, **call_kw):
    """Launch ``lie_cross_kernel``: returns ``L x g`` row by row, an array like ``L``.

    Args:
      call: ``tpjax._compat.triton_call`` (or jax-triton 0.3.1's ``triton_call``).
      l, g: contiguous arrays of one shape (..., 3) and dtype (float32 or float64); leading axes are
        flattened into the system index.
      block: systems per program (power of two). **call_kw: passed to ``call`` (``zeroed_outputs=(0,)``,
        ``num_warps``, ...); do not alias the output onto L or g.
    Out shape: one output shaped and typed like ``l``.
    """
    n = check_rows("lie_cross_call", l, g)
    return call(l, g, n, kernel=lie_cross_kernel, out_shape=l, grid=rows_grid(n), BLOCK=block, **call_kw)
