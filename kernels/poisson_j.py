"""POISSON_J: apply the Poisson tensor, ``f = J(z) g`` with ``g`` the gradient of H.

Canonical J = [[0, I], [-I, 0]] splits into two types: ``PASS`` (qdot = +dH/dp, ``f = g``) and
``NEGATE`` (pdot = -dH/dq, ``f = -g``). Lie-Poisson so(3)*: J(L) = [L]x, ``f = L x g``, written here as the
literal 3x3 matrix product (9 mul + 6 add, the form the ``lie_cross`` pass rewrites into ``LIE_CROSS``).
Device functions ``poisson_j_pass`` / ``poisson_j_negate`` / ``poisson_j_lie``; standalone kernels
``poisson_j_canonical_kernel`` / ``poisson_j_lie_kernel``; launchers ``poisson_j_call`` /
``poisson_j_lie_call``.
"""

import triton
import triton.language as tl

from .lie_cross import check_rows, load3, rows_grid, store3
from .symp_step import check_float, numel

#: canonical types, the values of the ``TYPE`` constexpr (names as in ``tpjax.ir.ops.POISSON_TYPES``).
#: (Triton reads module globals inside ``@triton.jit`` code only when they are ``tl.constexpr``.)
PASS = tl.constexpr(0)
NEGATE = tl.constexpr(1)
TYPES = {"PASS": PASS.value, "NEGATE": NEGATE.value}
#: default elements (canonical) / systems (Lie) per program.
BLOCK = 1024
LIE_BLOCK = 256


@triton.jit
def poisson_j_pass(g):
    """Return ``g`` unchanged (the dH/dp -> qdot block of canonical J). Any float tensor."""
    return g


@triton.jit
def poisson_j_negate(g):
    """Return ``-g`` exactly, signed zeros included (the dH/dq -> pdot block). Any float tensor.

    Written as ``g * -1.0``: Triton's unary minus is ``0 - g``, which maps +0 to +0; the multiply
    compiles to a sign flip (``neg.f32`` / ``neg.f64``).
    """
    return g * -1.0


@triton.jit
def poisson_j_lie(l0, l1, l2, g0, g1, g2):
    """Return ``[L]x g`` as the matrix product, rows (0, -l2, l1), (l2, 0, -l0), (-l1, l0, 0).

    Args: six tensors of one shape and dtype (float32 or float64). Returns three tensors like ``l0``.
    The zero entries are multiplied too (IEEE forbids folding ``0 * g``), so this costs 9 mul + 6 add
    (+3 negations building the matrix); ``lie_cross`` gives the same flow in 6 mul + 3 sub.
    """
    z = tl.zeros_like(l0)
    f0 = z * g0 + (-l2) * g1 + l1 * g2
    f1 = l2 * g0 + z * g1 + (-l0) * g2
    f2 = (-l1) * g0 + l0 * g1 + z * g2
    return f0, f1, f2


@triton.jit
def poisson_j_canonical_kernel(g_ptr, n, f_ptr, TYPE: tl.constexpr, BLOCK: tl.constexpr):
    """``f[i] = g[i]`` (TYPE == PASS) or ``f[i] = -g[i]`` (TYPE == NEGATE) for ``0 <= i < n``.

    Pointers: ``g_ptr``, ``f_ptr`` -> flat contiguous buffers of ``n`` elements, one dtype (float32 or
      float64). ``f_ptr`` may equal ``g_ptr`` (each element is read, then written, by one lane).
    n: int32 element count, n >= 1 and n < 2**31.
    Grid: ``(cdiv(n, BLOCK),)``; loads and stores masked by ``offs < n`` so any n works.
    TYPE: int constexpr, ``PASS`` (0) or ``NEGATE`` (1); BLOCK: power-of-two constexpr.
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask)
    if TYPE == NEGATE:
        f = poisson_j_negate(g)
    else:
        f = poisson_j_pass(g)
    tl.store(f_ptr + offs, f, mask=mask)


@triton.jit
def poisson_j_lie_kernel(l_ptr, g_ptr, n, f_ptr, BLOCK: tl.constexpr):
    """``f[i, :] = [L[i, :]]x g[i, :]`` for ``0 <= i < n`` systems, via ``poisson_j_lie``.

    Pointers: ``l_ptr``, ``g_ptr``, ``f_ptr`` -> contiguous row-major (n, 3) buffers of one dtype,
      float32 or float64: component k of system i at offset 3*i+k. ``f_ptr`` must not overlap the inputs.
    n: int32 number of systems, n >= 1 and 3*n < 2**31.
    Grid: ``(cdiv(n, BLOCK),)``; every load and store masked by ``i < n``. BLOCK: power-of-two constexpr.
    """
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < n
    l0, l1, l2 = load3(l_ptr, rows, mask)
    g0, g1, g2 = load3(g_ptr, rows, mask)
    f0, f1, f2 = poisson_j_lie(l0, l1, l2, g0, g1, g2)
    store3(f_ptr, rows, mask, f0, f1, f2)


def poisson_j_call(call, g, *, type="PASS", block=BLOCK, **call_kw):
    """Launch ``poisson_j_canonical_kernel``: returns ``g`` (PASS) or ``-g`` (NEGATE), an array like ``g``.

    Args:
      call: ``tpjax._compat.triton_call`` (or jax-triton 0.3.1's ``triton_call``).
      g: float32 or float64 array of any shape (the kernel sees it flat).
      type: ``"PASS"`` or ``"NEGATE"`` (static). block: elements per program (power of two).
      **call_kw: passed to ``call`` (``input_output_aliases={0: 0}``, ``zeroed_outputs=(0,)``, ...).
    Out shape: one output shaped and typed like ``g``.
    """
    if type not in TYPES:
        raise ValueError(f"poisson_j_call: type={type!r}, expected one of {sorted(TYPES)}.")
    check_float("g", g)
    n = numel(g.shape)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK"]),)
    return call(
        g, n, kernel=poisson_j_canonical_kernel, out_shape=g, grid=grid, TYPE=TYPES[type], BLOCK=block,
        **call_kw,
    )  # fmt: skip


def poisson_j_lie_call(call, l, g, *, block=LIE_BLOCK, **call_kw):
    """Launch ``poisson_j_lie_kernel``: returns ``[L]x g`` row by row, an array like ``L``.

    Args: as ``lie_cross_call``: ``l``, ``g`` contiguous (..., 3) arrays of one float32/float64 dtype,
      leading axes flattened into the system index; ``block`` systems per program; ``**call_kw`` to ``call``.
    Out shape: one output shaped and typed like ``l``.
    """
    n = check_rows("poisson_j_lie_call", l, g)
    return call(l, g, n, kernel=poisson_j_lie_kernel, out_shape=l, grid=rows_grid(n), BLOCK=block, **call_kw)
