"""Precise float32 sin/cos for bounded arguments: one Cody–Waite reduction, no slow path.

libdevice's ``sinf``/``cosf`` carry a Payne–Hanek reduction for huge arguments (a loop over a table in local
memory); even when no lane takes it, its presence costs registers and a branch in every call of a fused
loop. ``sin_bounded`` / ``cos_bounded`` keep only what |x| <= TRIG_BOUND needs:

  k = nearest integer to x * 2/pi,  r = x - k * (P1 + P2 + P3)   (three fma; P1 + P2 + P3 = pi/2 to 2**-73),
  then libdevice's quadrant-0 polynomials on |r| <= pi/4 (+ roundoff), and the quadrant k mod 4 picks
  (+-sin r, +-cos r).

P1 is a float32 in [1, 2), so ``x - k P1`` is exact for every float32 |x| <= TRIG_BOUND (both operands are
multiples of 2**-24 and the result is below 1); P2 and P3 carry the next 48 bits. The error is at most 2 ulp of float32
(measured: 1.5 ulp, ``tests/test_trig_kernels.py``; exhaustively over every float32 in the range on the
GPU). Beyond TRIG_BOUND the result is wrong: a caller must know |x| <= TRIG_BOUND or check it, as the
generated kernels do (``tpjax/codegen/triton_source.py``: ``track_range`` keeps each lane's largest |argument|,
and a block with one beyond the range runs again with libdevice).

float32 only; ``sincos_poly`` (float32/float64, |x| <= pi/4, no reduction) is also used by ``rigid_body``.
"""

import triton
import triton.language as tl

#: libdevice's sin/cos kernels (``__nv_sinf``/``__nv_cosf`` and ``__cudart_sin_cos_coeffs`` of ``__nv_sin``/
#: ``__nv_cos``), Horner in x^2, highest power first. For |x| <= pi/4 libdevice's reduction gives quadrant
#: 0 and the argument unchanged, so ``sincos_poly`` (the same fma sequence) returns libdevice's bits
#: (float32: for normal x; libdevice float32 flushes subnormals, the polynomial keeps them).
SIN_F32 = tuple(float.fromhex(h) for h in ("-0x1.9a82a6p-13", "0x1.110bc8p-7", "-0x1.55555p-3"))
COS_F32 = tuple(float.fromhex(h) for h in ("0x1.9758p-16", "-0x1.6c0fdap-10", "0x1.555576p-5", "-0x1.fffffep-2"))
SIN_F64 = tuple(float.fromhex(h) for h in ("0x1.5db65f9785ebap-33", "-0x1.ae5f12cb0d246p-26",
                                           "0x1.71de369ace392p-19", "-0x1.a01a019db62a1p-13",
                                           "0x1.1111111110818p-7", "-0x1.5555555555554p-3"))  # fmt: skip
COS_F64 = tuple(float.fromhex(h) for h in ("-0x1.8ff8320fd8164p-37", "0x1.1eea7c1ef8528p-29",
                                           "-0x1.27e4f8e06e6d9p-22", "0x1.a01a019ddbce9p-16",
                                           "-0x1.6c16c16c15d47p-10", "0x1.5555555555551p-5", "-0x1p-1"))  # fmt: skip
_S32, _C32, _S64, _C64 = (tl.constexpr(c) for c in (SIN_F32, COS_F32, SIN_F64, COS_F64))

#: largest |x| that ``sin_bounded`` / ``cos_bounded`` reduce correctly (2**17; k = rint(2x/pi) < 2**17).
TRIG_BOUND = 131072.0
#: pi/2 = PIO2_1 + PIO2_2 + PIO2_3 + O(2**-73), float32 each, the first two rounded down so that all three are
#: positive (with k = +0, fma(k, -P, x) is then -0 + x = x, signed zero included); 2/pi rounded to float32.
PIO2_1, PIO2_2, PIO2_3 = (float.fromhex(h) for h in ("0x1.921fb4p+0", "0x1.4442dp-24", "0x1.84698ap-48"))
TWO_OVER_PI = float.fromhex("0x1.45f306p-1")
#: 1.5 * 2**23: adding it rounds a float32 below 2**22 in size to an integer (``reduce_pio2``).
ROUNDER = 12582912.0
_P1, _P2, _P3, _2PI, _BOUND, _ROUNDER = (tl.constexpr(c) for c in (PIO2_1, PIO2_2, PIO2_3, TWO_OVER_PI, TRIG_BOUND,
                                                                   ROUNDER))  # fmt: skip


@triton.jit
def horner(x2, C: tl.constexpr):
    """C[0] x2^(m-1) + ... + C[m-1] by fma (m = len(C) >= 2), constants in x2's dtype (``tl.fma`` would
    round a bare Python float to float32)."""
    p = tl.fma(x2, tl.full((), C[0], x2.dtype), tl.full((), C[1], x2.dtype))
    for i in tl.static_range(2, len(C.value)):  # .value: the interpreter passes C as a constexpr (no len)
        p = tl.fma(p, x2, tl.full((), C[i], x2.dtype))
    return p


@triton.jit
def sincos_poly(x):
    """(sin x, cos x) for |x| <= pi/4 (float32/float64): libdevice's quadrant-0 fma sequence, no reduction."""
    x2 = x * x
    if x.dtype == tl.float32:
        s = tl.fma(horner(x2, _S32), tl.fma(x2, x, 0.0), x)  # x + (x2 x) P(x2); fma(.., 0) keeps sin(-0) = -0
        c = tl.fma(horner(x2, _C32), x2, 1.0)
    else:
        s = tl.fma(tl.fma(horner(x2, _S64), x2, 0.0), x, x)  # x + (x2 P(x2)) x
        c = tl.fma(horner(x2, _C64), x2, 1.0)
    return s, c


@triton.jit
def reduce_pio2(x):
    """(r, k) with x = k pi/2 + r, |r| <= pi/4 (+ roundoff), k an int32 (only k mod 4 is exact); float32,
    |x| <= TRIG_BOUND.

    j = fma(x, 2/pi, 1.5 * 2**23) is 1.5 * 2**23 + k with k the integer nearest x * 2/pi (float32's ulp there
    is 1), so ``j - 1.5 * 2**23`` is k exactly (+0 for x = -0, so sin(-0) = -0 below) and j's low bits are
    k mod 4: no float-to-int conversion (a quarter-rate instruction) and no rint.
    """
    j = tl.fma(x, _2PI.value, _ROUNDER.value)
    k = j - _ROUNDER.value
    r = tl.fma(k, -_P1.value, x)  # exact: see the module docstring
    r = tl.fma(k, -_P2.value, r)
    r = tl.fma(k, -_P3.value, r)
    return r, j.to(tl.int32, bitcast=True)


@triton.jit
def _quadrant(s, c, k):
    """sin(k pi/2 + r) from s = sin r, c = cos r: k mod 4 = 0, 1, 2, 3 -> s, c, -s, -c."""
    v = tl.where((k & 1) == 0, s, c)
    return tl.where((k & 2) == 0, v, -v)


@triton.jit
def sin_bounded(x):
    """sin x for float32 |x| <= TRIG_BOUND, within 2 ulp (wrong beyond it: the caller checks)."""
    r, k = reduce_pio2(x)
    s, c = sincos_poly(r)
    return _quadrant(s, c, k)


@triton.jit
def cos_bounded(x):
    """cos x = sin(x + pi/2) for float32 |x| <= TRIG_BOUND, within 2 ulp (wrong beyond it)."""
    r, k = reduce_pio2(x)
    s, c = sincos_poly(r)
    return _quadrant(s, c, k + 1)


@triton.jit
def track_range(amax, x):
    """``amax`` (per lane) raised to |x|: one max with an |.| operand. A NaN argument: the GPU's max ignores
    it (it can only follow an argument already out of range, or gives NaN on either path); the
    interpreter's propagates it, and ``any_out_of_range`` counts a NaN lane as out of range."""
    return tl.maximum(amax, tl.abs(x))


@triton.jit
def any_out_of_range(amax):
    """Whether any lane of ``amax`` (from ``track_range``) is not within TRIG_BOUND: a scalar, so a branch on
    it is block-uniform."""
    return tl.max(tl.where(amax <= _BOUND.value, 0, 1), axis=0) > 0  # a NaN lane counts (max over ints)
