"""Reference float arithmetic in numpy for the sin/cos tests: correctly rounded fma (float32, float64), ulp
errors, and numpy transcriptions of ``kernels/trig.py`` (the same constants and the same fma sequence, so a
kernel's result can be compared bit for bit). Constants are passed in, so this module needs no triton.
"""

import numpy as np


def _two_sum(a, b):
    s = a + b
    bp = s - a
    return s, (a - (s - bp)) + (b - bp)


def _round_odd(s, e):
    """The exact s + e (s = RN(s + e)) rounded to odd in float64."""
    even = (s.view(np.int64) & 1) == 0
    return np.where((e != 0) & even, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)


def fma32(a, b, c):
    """Correctly rounded float32 fma: a*b is exact in float64, the sum rounded to odd, then to float32."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c)))
    return _round_odd(*_two_sum(a * b, c)).astype(np.float32)


def _two_prod(a, b):
    def split(x):
        t = x * 134217729.0
        hi = t - (t - x)
        return hi, x - hi

    (ah, al), (bh, bl) = split(a), split(b)
    p = a * b
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def fma64(a, b, c):
    """Correctly rounded float64 fma (Boldo-Melquiond: RN(th + RO(tl + ul)), uh+ul = ab, th+tl = c+uh)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (a, b, c)))
    uh, ul = _two_prod(a, b)
    th, tl_ = _two_sum(c, uh)
    z = th + _round_odd(*_two_sum(tl_, ul))
    return np.where((uh == 0) & (c == 0), uh + c, z)  # signed zeros


def ulp_error(got, ref, dtype):
    """|got - ref| in ulps of dtype at ref (ref in a wider type; the smaller ulp just below a power of 2)."""
    r = np.abs(ref).astype(dtype)
    sp = np.where(np.abs(ref) < r, np.spacing(np.nextafter(r, dtype(0))), np.spacing(r)).astype(ref.dtype)
    return np.abs(got.astype(ref.dtype) - ref) / sp


def horner(x2, C, fma):
    p = fma(x2, C[0], C[1])
    for c in C[2:]:
        p = fma(p, x2, c)
    return p


def sincos_poly(x, S32, C32, S64, C64):
    """numpy transcription of ``kernels.trig.sincos_poly`` (coefficient tuples passed in)."""
    x2 = x * x
    if x.dtype == np.float32:
        s = fma32(horner(x2, S32, fma32), fma32(x2, x, 0.0), x)
        return s, fma32(horner(x2, C32, fma32), x2, 1.0)
    s = fma64(fma64(horner(x2, S64, fma64), x2, 0.0), x, x)
    return s, fma64(horner(x2, C64, fma64), x2, 1.0)


def sin_cos_bounded(x, trig):
    """numpy transcription of ``trig.sin_bounded`` / ``trig.cos_bounded`` (``trig``: the kernels.trig module
    or any object with its constants) for float32 ``x``: (sin x, cos x)."""
    x = np.asarray(x, np.float32)
    j = fma32(x, trig.TWO_OVER_PI, trig.ROUNDER)
    k = j - np.float32(trig.ROUNDER)
    r = fma32(k, -trig.PIO2_1, x)
    r = fma32(k, -trig.PIO2_2, r)
    r = fma32(k, -trig.PIO2_3, r)
    s, c = sincos_poly(r, trig.SIN_F32, trig.COS_F32, trig.SIN_F64, trig.COS_F64)
    q = j.view(np.int32).astype(np.int64)
    pick = lambda q: np.where(q & 2, -1, 1) * np.where(q & 1, c, s)
    return pick(q).astype(np.float32), pick(q + 1).astype(np.float32)
