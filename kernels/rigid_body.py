"""RIGID_BODY: the free rigid body on so(3)* by exact axis rotations, many steps in registers.

H(L) = sum_i L_i^2 / (2 I_i). The flow of H_i rotates L about body axis e_i by theta = -t L_i / I_i, with
(i, j, k) cyclic: L_i fixed, (L_j, L_k) <- L + ((c - 1) L_j - s L_k, s L_j + (c - 1) L_k), evaluated with
c - 1 = -2 sin^2(theta/2), s = 2 sin(theta/2) cos(theta/2) as tpjax/integrators/rigid_body.py does (so
|L|^2 has no secular drift). Strang step: R1(dt/2) R2(dt/2) R3(dt) R2(dt/2) R1(dt/2); ORDER 4 is Yoshida's
triple jump S(w1 dt) S(w0 dt) S(w1 dt). ``rigid_body_strang_step`` is the device function (the reference's
operations one for one), ``rigid_body_kernel`` the multi-step kernel, ``rigid_body_call`` the launcher.

The kernel merges adjacent R1 rotations (R1(a) R1(b) = R1(a + b) exactly, L_1 is fixed by R1), i.e. 4
rotations per Strang step instead of 5 (12 instead of 15 at order 4), and forms each half-angle as
``L_i * (-(tau/2) / I_i)`` with the per-sub-step factor computed once: results differ from the reference
by roundoff only.
"""

import triton
import triton.language as tl

from .lie_cross import load3, rows_grid, store3
from .symp_step import check_float, numel
from .trig import COS_F32, COS_F64, SIN_F32, SIN_F64  # noqa: F401  (re-exported: the tests read them)
from .trig import sincos_poly as _sincos_poly

#: default systems per program.
BLOCK = 256
_CBRT2 = 2.0 ** (1.0 / 3.0)
W1 = tl.constexpr(1.0 / (2.0 - _CBRT2))  # Yoshida outer sub-step
W0 = tl.constexpr(-_CBRT2 / (2.0 - _CBRT2))  # Yoshida middle (backward) sub-step

#: sin/cos modes of ``rotate_half``: libdevice (``tl.sin``/``tl.cos``), ``sin.approx``/``cos.approx``
#: (float32), and libdevice's own quadrant-0 polynomials without range reduction (|x| <= pi/4 only).
LIBDEVICE = tl.constexpr(0)
FAST = tl.constexpr(1)
POLY = tl.constexpr(2)

#: the POLY loop runs a chunk of CHUNK steps when max_block |L| * max |k| <= THETA_POLY (< pi/4 by 0.7%,
#: room for |L|'s roundoff drift within a chunk), so every half-angle stays in libdevice's quadrant 0.
CHUNK = tl.constexpr(64)
THETA_POLY = 0.78
_THETA2 = tl.constexpr(THETA_POLY * THETA_POLY)


@triton.jit
def _div(a, b):
    """Correctly rounded a / b (float32 ``/`` is ``div.full.f32``, ~2 ulp; float64 ``/`` is ``div.rn``)."""
    if a.dtype == tl.float32:
        return tl.math.div_rn(a, b)
    else:
        return a / b


@triton.jit
def _sincos(x, MODE: tl.constexpr):
    """(sin x, cos x): libdevice (LIBDEVICE), ``sin.approx.f32``/``cos.approx.f32`` (FAST, float32 only), or
    ``_sincos_poly`` (POLY, |x| <= pi/4 only)."""
    if MODE == FAST:
        s = tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                      pack=1)  # fmt: skip
        c = tl.inline_asm_elementwise("cos.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                      pack=1)  # fmt: skip
    elif MODE == POLY:
        s, c = _sincos_poly(x)
    else:
        s = tl.sin(x)
        c = tl.cos(x)
    return s, c


@triton.jit
def rotate_half(lj, lk, half, MODE: tl.constexpr):
    """Rotate (lj, lk) by angle ``2 * half`` with the careful formula; returns the new (lj, lk).

    ``lj + ((c-1) lj - s lk)``, ``lk + (s lj + (c-1) lk)``, c-1 = -2 sh^2, s = 2 sh ch, (sh, ch) =
    (sin, cos)(half) by ``_sincos(half, MODE)`` (MODE False/LIBDEVICE, True/FAST or POLY). Tensors of one
    shape and dtype (float32 or float64; FAST needs float32, POLY |half| <= pi/4).
    """
    sh, ch = _sincos(half, MODE)
    cm1 = -2.0 * sh * sh
    s = 2.0 * sh * ch
    return lj + (cm1 * lj - s * lk), lk + (s * lj + cm1 * lk)


@triton.jit
def rigid_body_strang_step(l0, l1, l2, dt, i0, i1, i2):
    """One Strang step R1(dt/2) R2(dt/2) R3(dt) R2(dt/2) R1(dt/2) on register values.

    The same operations as ``tpjax.integrators.rigid_body.rigid_body_strang`` (half-angle
    ``0.5 * (-(tau L_i) / I_i)``, careful rotation), so results agree to roundoff (libdevice sin/cos vs
    XLA's, and Triton's float32 ``/`` is ``div.full``, not ``div.rn``).
    Args: l0, l1, l2: tensors of one shape and dtype (float32/float64); dt, i0, i1, i2: scalars of that
      dtype (dt the step, I_i > 0 the principal moments). Returns: (l0, l1, l2) after the step.
    """
    h = 0.5 * dt
    l1, l2 = rotate_half(l1, l2, 0.5 * (-(h * l0) / i0), LIBDEVICE)
    l2, l0 = rotate_half(l2, l0, 0.5 * (-(h * l1) / i1), LIBDEVICE)
    l0, l1 = rotate_half(l0, l1, 0.5 * (-(dt * l2) / i2), LIBDEVICE)
    l2, l0 = rotate_half(l2, l0, 0.5 * (-(h * l1) / i1), LIBDEVICE)
    l1, l2 = rotate_half(l1, l2, 0.5 * (-(h * l0) / i0), LIBDEVICE)
    return l0, l1, l2


@triton.jit
def _strang_inner(l0, l1, l2, k1, k2, MODE: tl.constexpr):
    """R2(tau/2) R3(tau) R2(tau/2), the Strang step less its R1 ends; k1 = -(tau/4)/I_1, k2 = -(tau/2)/I_2."""
    l2, l0 = rotate_half(l2, l0, l1 * k1, MODE)
    l0, l1 = rotate_half(l0, l1, l2 * k2, MODE)
    l2, l0 = rotate_half(l2, l0, l1 * k1, MODE)
    return l0, l1, l2


@triton.jit
def _steps(l0, l1, l2, start, stop, n_steps, ks, ORDER: tl.constexpr, MODE: tl.constexpr):
    """Steps ``start <= step < stop`` of ``rigid_body_kernel``'s loop (each ends with its merged R1).

    ks: ORDER 2: (k0_end, k0_mid, k1, k2); ORDER 4: (k0_end, k0_step, k0_in, k1o, k2o, k1m, k2m).
    """
    for step in range(start, stop):
        if ORDER == 2:
            l0, l1, l2 = _strang_inner(l0, l1, l2, ks[2], ks[3], MODE)
        else:
            l0, l1, l2 = _strang_inner(l0, l1, l2, ks[3], ks[4], MODE)
            l1, l2 = rotate_half(l1, l2, l0 * ks[2], MODE)
            l0, l1, l2 = _strang_inner(l0, l1, l2, ks[5], ks[6], MODE)
            l1, l2 = rotate_half(l1, l2, l0 * ks[2], MODE)
            l0, l1, l2 = _strang_inner(l0, l1, l2, ks[3], ks[4], MODE)
        k0 = tl.where(step == n_steps - 1, ks[0], ks[1])
        l1, l2 = rotate_half(l1, l2, l0 * k0, MODE)
    return l0, l1, l2


@triton.jit
def rigid_body_kernel(l_ptr, inertia_ptr, dt_ptr, n, n_steps, out_ptr, ORDER: tl.constexpr,
                      FAST_MATH: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """``out[i, :]`` = L[i, :] after ``n_steps`` steps (Strang, ORDER 2, or Yoshida, ORDER 4), 0 <= i < n.

    Pointers: ``l_ptr``, ``out_ptr`` -> contiguous row-major (n, 3) buffers (component k of system i at
      3*i+k); ``inertia_ptr`` -> 3 elements (I_0, I_1, I_2 > 0); ``dt_ptr`` -> 1 element. All one dtype,
      float32 or float64; inertia and dt are loaded once per program, the steps run in registers and only
      the final L is stored. ``out_ptr`` must not overlap ``l_ptr``.
    n: int32 number of systems, n >= 1, 3*n < 2**31. n_steps: int >= 0 (0 copies L).
    Grid: ``(cdiv(n, BLOCK),)``, loads and stores masked by ``i < n``. ORDER: 2 or 4. FAST_MATH: float32
      only, sin/cos by ``sin.approx.f32`` / ``cos.approx.f32``. BLOCK: power-of-two constexpr.
    Precise mode runs CHUNK steps at a time: with POLY sin/cos (libdevice's bits, no range reduction) when
    the block's largest possible half-angle max|L| max|k| is <= THETA_POLY (a block-uniform branch), else
    with libdevice.
    """
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < n
    l0, l1, l2 = load3(l_ptr, rows, mask)
    dt = tl.load(dt_ptr)
    i0 = tl.load(inertia_ptr)
    i1 = tl.load(inertia_ptr + 1)
    i2 = tl.load(inertia_ptr + 2)
    # half-angle of R_i(tau) is L_i * (-(tau/2) / I_i); one factor per (axis, sub-step length).
    if ORDER == 2:
        k0_end = _div(-0.25 * dt, i0)  # R1(dt/2): first and last
        k0_mid = _div(-0.5 * dt, i0)  # R1(dt/2) R1(dt/2) merged between steps
        k1 = _div(-0.25 * dt, i1)
        k2 = _div(-0.5 * dt, i2)
        ks = (k0_end, k0_mid, k1, k2)
        kmax = tl.maximum(tl.maximum(tl.abs(k0_mid), tl.abs(k1)), tl.abs(k2))
    else:
        tl.static_assert(ORDER == 4, "ORDER must be 2 or 4")
        # W.value (a Python float): under TRITON_INTERPRET a constexpr times a tensor stays a constexpr
        k0_end = _div((-0.25 * W1.value) * dt, i0)  # R1(w1 dt/2): first and last
        k0_step = _div((-0.5 * W1.value) * dt, i0)  # R1(w1 dt/2) R1(w1 dt/2) between steps
        k0_in = _div((-0.25 * (W1.value + W0.value)) * dt, i0)  # R1(w1 dt/2) R1(w0 dt/2) inside a step
        k1o = _div((-0.25 * W1.value) * dt, i1)
        k2o = _div((-0.5 * W1.value) * dt, i2)
        k1m = _div((-0.25 * W0.value) * dt, i1)
        k2m = _div((-0.5 * W0.value) * dt, i2)
        ks = (k0_end, k0_step, k0_in, k1o, k2o, k1m, k2m)
        kmax = tl.maximum(tl.maximum(tl.maximum(tl.abs(k0_step), tl.abs(k0_in)), tl.abs(k1o)),
                          tl.maximum(tl.maximum(tl.abs(k2o), tl.abs(k1m)), tl.abs(k2m)))  # fmt: skip
    if FAST_MATH:
        if n_steps > 0:
            l1, l2 = rotate_half(l1, l2, l0 * k0_end, FAST)
        l0, l1, l2 = _steps(l0, l1, l2, 0, n_steps, n_steps, ks, ORDER, FAST)
    else:
        if n_steps > 0:
            l1, l2 = rotate_half(l1, l2, l0 * k0_end, LIBDEVICE)
        for start in range(0, n_steps, CHUNK):
            stop = tl.minimum(start + CHUNK, n_steps)
            # |L_i| <= |L|, and rotations keep |L| to roundoff: one block-uniform test per chunk.
            norm2 = tl.max(tl.where(mask, l0 * l0 + l1 * l1 + l2 * l2, 0.0), axis=0)
            if norm2 * (kmax * kmax) <= tl.full((), _THETA2, norm2.dtype):
                l0, l1, l2 = _steps(l0, l1, l2, start, stop, n_steps, ks, ORDER, POLY)
            else:
                l0, l1, l2 = _steps(l0, l1, l2, start, stop, n_steps, ks, ORDER, LIBDEVICE)
    store3(out_ptr, rows, mask, l0, l1, l2)


def rigid_body_call(call, L, inertia, dt, *, steps, order=2, fast_math=False, block=BLOCK, **call_kw):
    """Launch ``rigid_body_kernel``: L after ``steps`` steps, an array like ``L``.

    Args:
      call: ``tpjax._compat.triton_call`` (or jax-triton 0.3.1's ``triton_call``).
      L: contiguous (..., 3) array, float32 or float64 (leading axes flattened into the system index).
      inertia: (3,) array of L's dtype; dt: () or (1,) array of L's dtype (run-time operands).
      steps: int >= 0 (a run-time kernel argument); order: 2 or 4; fast_math: float32 only.
      block: systems per program (power of two). **call_kw: passed to ``call`` (``num_warps``, ...);
        do not alias the output onto L.
    Out shape: one output shaped and typed like ``L``.
    """
    check_float("L", L)
    if len(L.shape) == 0 or int(L.shape[-1]) != 3 or numel(L.shape) == 0:
        raise ValueError(f"rigid_body_call: L has shape {tuple(L.shape)}, expected non-empty (..., 3).")
    for name, x, size in (("inertia", inertia, 3), ("dt", dt, 1)):
        if x.dtype != L.dtype or numel(x.shape) != size or len(x.shape) > 1:
            raise ValueError(f"rigid_body_call: {name} is {x.dtype}{tuple(x.shape)}, expected {size} {L.dtype}.")
    if order not in (2, 4) or int(steps) < 0:
        raise ValueError(f"rigid_body_call: order must be 2 or 4 and steps >= 0, got {order}, {steps}.")
    if fast_math and str(L.dtype) != "float32":
        raise ValueError("rigid_body_call: fast_math is float32 only.")
    n = numel(L.shape) // 3
    return call(L, inertia, dt, n, int(steps), kernel=rigid_body_kernel, out_shape=L, grid=rows_grid(n),
                ORDER=int(order), FAST_MATH=bool(fast_math), BLOCK=block, **call_kw)  # fmt: skip
