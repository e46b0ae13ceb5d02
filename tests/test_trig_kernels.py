"""Bounded-argument precise float32 sin/cos (``kernels/trig.py``) and the generated kernels' libdevice redo.

CPU: the constants (pi/2 to 72 bits, the exactness of the first Cody-Waite step), the numpy transcription
(``tests._float_ops``) within 2 ulp on 2 million points and every float32 nearest a multiple of pi/2 up to
TRIG_BOUND, exact symmetry, the interpreter group "trig" (the Triton functions equal the transcription bit
for bit; a block with an out-of-range lane is redone with libdevice), and the generated source.
GPU: every float32 in [0, TRIG_BOUND] within 2 ulp of float64 libdevice, the device's bits equal the
transcription's, and ``tpjax.integrate`` of float32 pendulums with members beyond the range equals XLA.
"""

import math
import re
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tests import _float_ops as F
from tests._hlo import kernel_names
from tests.test_interpreted_kernels import check

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from triton.language.extra import libdevice  # noqa: E402

from kernels import trig  # noqa: E402
from tpjax.codegen import triton_source as TS  # noqa: E402

#: pi to 60 digits (Fraction arithmetic checks the split of pi/2 exactly).
PI_60 = Fraction("3.14159265358979323846264338327950288419716939937510582097494")
#: measured max error of the transcription (float32, this file's grid of 2.25M points): sin 1.47 ulp, cos 1.47 ulp.
ULP_BOUND = 2.0


def test_constants_split_pi_over_2():
    parts = (trig.PIO2_1, trig.PIO2_2, trig.PIO2_3)
    assert all(float(np.float32(c)) == c for c in (*parts, trig.TWO_OVER_PI))
    assert abs(sum(Fraction(c) for c in parts) - PI_60 / 2) < Fraction(1, 2**72) and min(parts) > 0
    assert np.float32(trig.TWO_OVER_PI) == np.float32(float(2 / PI_60))
    # x - k PIO2_1 is exact: PIO2_1 is a multiple of 2**-23 and k PIO2_1 (k < 2**17) fits 41 bits, so the
    # difference (a multiple of 2**-24 below 1 in size) has at most 24 significant bits.
    assert (Fraction(trig.PIO2_1) * 2**23).denominator == 1
    assert trig.TRIG_BOUND * trig.TWO_OVER_PI < 2**17 and trig.ROUNDER == 1.5 * 2**23  # k + ROUNDER: ulp 1


def _grid():
    rng = np.random.default_rng(2026_12_02)
    k = np.arange(1, int(trig.TRIG_BOUND / (math.pi / 2)) + 1, dtype=np.float64)
    near = (k * (math.pi / 2)).astype(np.float32)  # the hardest arguments: r = x - k pi/2 tiny
    x = np.concatenate([
        rng.uniform(0, trig.TRIG_BOUND, 1_500_000),
        np.exp(rng.uniform(np.log(1e-38), np.log(trig.TRIG_BOUND), 500_000)),
        near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(0)),
        [trig.TRIG_BOUND, np.pi / 4, 1.0, 2.0**-20],
    ]).astype(np.float32)  # fmt: skip
    return x[x <= trig.TRIG_BOUND]


def test_bounded_sin_cos_within_2_ulp():
    x = _grid()
    s, c = F.sin_cos_bounded(x, trig)
    ref = x.astype(np.float64)
    es, ec = F.ulp_error(s, np.sin(ref), np.float32), F.ulp_error(c, np.cos(ref), np.float32)
    assert es.max() <= ULP_BOUND and ec.max() <= ULP_BOUND, (es.max(), ec.max())
    assert es.max() > 0.5 and ec.max() > 0.5  # not correctly rounded: the check measures something


def test_bounded_sin_cos_symmetry_zeros_and_tiny():
    x = _grid()[::7]
    s, c = F.sin_cos_bounded(x, trig)
    sn, cn = F.sin_cos_bounded(-x, trig)
    np.testing.assert_array_equal(sn, -s)
    np.testing.assert_array_equal(cn, c)
    z = np.array([0.0, -0.0, 1e-30, -1e-30, 2.0**-126], np.float32)
    sz, cz = F.sin_cos_bounded(z, trig)
    assert np.array_equal(sz, z) and np.array_equal(np.signbit(sz), np.signbit(z)) and np.all(cz == 1)


def test_triton_functions_and_the_redo_under_the_interpreter():
    check("trig", "the numpy transcription / the libdevice-only kernel")


def _pendulum(dtype=jnp.float32):
    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    return tpjax.compile(H, (jnp.zeros((), dtype), jnp.zeros((), dtype)), method="leapfrog")


def test_generated_kernel_uses_the_bounded_forms_with_a_libdevice_redo():
    src = TS.generate(_pendulum())
    loop, redo = src.split("if any_out_of_range(trig_amax):")
    assert "sin_bounded(" in loop and "tl.sin(" not in loop and "track_range(trig_amax," in loop
    assert "tl.sin(" in redo and "sin_bounded(" not in redo and "track_range" not in redo
    assert "tl.load(q_ptr + offs" in redo  # the block restarts from its initial state
    assert src.index("if not FAST_MATH:") < src.index("if any_out_of_range(trig_amax):")
    with jax.enable_x64(True):
        f64 = TS.generate(_pendulum(jnp.float64))
    for src in (f64, TS.generate_program(_pendulum().step, bounded_trig=False)):
        assert "any_out_of_range" not in src.split("@triton.jit\ndef fused_step_kernel")[1]
        assert "sin_bounded(" not in src.split("@triton.jit\ndef fused_step_kernel")[1]


def test_a_redo_that_would_pass_the_statement_limit_keeps_libdevice_alone(monkeypatch):
    comp = _pendulum()
    one = TS._count(TS.generate_program(comp.step, bounded_trig=False).split("def fused_step_kernel")[1].splitlines())
    monkeypatch.setattr(TS, "MAX_STATEMENTS", one + 2)  # room for one loop, not for the redo
    src = TS.generate_program(comp.step)
    assert "any_out_of_range" not in src.split("def fused_step_kernel")[1] and "tl.sin(" in src


def _loop_program(dtype=np.float32):
    from tpjax.adjoint.fused_sweep import SweepBody
    from tpjax.frontend.loop_body import loop_program
    from tpjax.integrators.stepper import program_stepper

    st = program_stepper(_pendulum(dtype).without_fsal())
    return loop_program(SweepBody(st.step, 2, (), True), [np.zeros((), dtype)] * 5, [np.zeros((), dtype)])


def test_fused_loop_kernel_uses_the_bounded_forms_with_a_libdevice_redo(monkeypatch):
    from tpjax.codegen import triton_loop as TL

    src = TL.generate_loop(_loop_program(), (False,))
    loop, redo = src.split("if any_out_of_range(trig_amax):")
    assert "sin_bounded(" in loop and "cos_bounded(" in loop and "tl.sin(" not in loop
    assert "tl.sin(" in redo and "tl.cos(" in redo and "sin_bounded(" not in redo
    assert "x0 = tl.load(x0_ptr + offs" in redo and "v0 = tl.load" not in redo  # carried values reloaded
    with jax.enable_x64(True):
        f64 = TL.generate_loop(_loop_program(np.float64), (False,))
    plain = TL.generate_loop(_loop_program(), (False,), bounded_trig=False)
    assert all("any_out_of_range(" not in s.split("def fused_loop_kernel")[1] for s in (f64, plain))
    one = TS._count(plain.split("def fused_loop_kernel")[1].splitlines())
    monkeypatch.setattr(TL, "MAX_STATEMENTS", one + 2)  # room for one loop, not for the redo
    assert TL.generate_loop(_loop_program(), (False,)).split("def fused_loop_kernel")[1] == plain.split(
        "def fused_loop_kernel")[1]  # fmt: skip


def test_fast_math_kernel_drops_the_bounded_forms_and_the_redo():
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tpjax.codegen import triton as TG

    kern = TG.kernel(_pendulum())
    ptx = {}
    for fast in (False, True):
        constexprs = {"BLOCK": 128, "FAST_MATH": fast}
        sig = {a: "*fp32" if a.endswith("_ptr") else "constexpr" if a in constexprs else "i32" for a in kern.arg_names}
        src = ASTSource(fn=kern, signature=sig, constexprs=constexprs)
        ptx[fast] = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    # the bounded form's fma(x, 2/pi, 1.5 * 2**23) in the precise kernel; none of it (nor the redo) with FAST_MATH
    assert re.search(r"fma\.rn\.f32\s+%\w+, %\w+, 0f3F22F983, 0f4B400000;", ptx[False])
    assert "sin.approx.f32" in ptx[True] and "0f3F22F983" not in ptx[True] and "0f4B400000" not in ptx[True]


# ------------------------------------------------------------------------------------------------ GPU
@triton.jit
def _ulp_kernel(n, base, out_ptr, BLOCK: tl.constexpr):
    """Max ulp error of sin_bounded / cos_bounded over the float32 bit patterns base + [0, n), per program,
    against float64 libdevice (ulp of the float32 binade of the true value)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.where(i < n, base + i, base).to(tl.int32).to(tl.float32, bitcast=True)
    worst = tl.zeros([BLOCK], tl.float64)
    for which in tl.static_range(2):
        got = trig.sin_bounded(x) if which == 0 else trig.cos_bounded(x)
        ref = libdevice.sin(x.to(tl.float64)) if which == 0 else libdevice.cos(x.to(tl.float64))
        a32 = tl.abs(ref).to(tl.float32)
        b = a32.to(tl.int32, bitcast=True)
        ulp = libdevice.exp2((tl.maximum((b >> 23) & 255, 1) - 150).to(tl.float64))
        ulp = tl.where(((b & 0x7FFFFF) == 0) & (tl.abs(ref) < a32.to(tl.float64)), ulp * 0.5, ulp)
        worst = tl.maximum(worst, tl.abs(got.to(tl.float64) - ref) / ulp)
    tl.store(out_ptr + tl.program_id(0), tl.max(worst, axis=0).to(tl.float32))


@triton.jit
def _sincos_kernel(x_ptr, n, s_ptr, c_ptr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0)
    tl.store(s_ptr + offs, trig.sin_bounded(x), mask=m)
    tl.store(c_ptr + offs, trig.cos_bounded(x), mask=m)


@pytest.mark.gpu
def test_every_float32_in_range_within_2_ulp_on_the_gpu():
    from tpjax import _compat

    top = int(np.float32(trig.TRIG_BOUND).view(np.int32))  # bit patterns 0 ... TRIG_BOUND, all x >= 0
    chunk, block, worst = 1 << 27, 1024, 0.0
    for base in range(0, top + 1, chunk):
        n = min(chunk, top + 1 - base)
        out = _compat.triton_call(n, base, kernel=_ulp_kernel, grid=(triton.cdiv(n, block),), BLOCK=block,
                                  out_shape=jax.ShapeDtypeStruct((triton.cdiv(n, block),), jnp.float32))  # fmt: skip
        worst = max(worst, float(jnp.max(out)))
    print(f"max error over every float32 in [0, TRIG_BOUND]: {worst:.3f} ulp")
    assert 0.5 < worst <= ULP_BOUND, worst


@pytest.mark.gpu
def test_device_bits_equal_the_transcription():
    from tpjax import _compat

    x = np.concatenate([_grid()[::3], -_grid()[::5]])
    n = len(x)
    shape = jax.ShapeDtypeStruct((n,), jnp.float32)
    s, c = _compat.triton_call(jnp.asarray(x), n, kernel=_sincos_kernel, grid=(triton.cdiv(n, 256),), BLOCK=256,
                               out_shape=(shape, shape))  # fmt: skip
    rs, rc = F.sin_cos_bounded(x, trig)
    np.testing.assert_array_equal(np.asarray(s).view(np.int32), rs.view(np.int32))
    np.testing.assert_array_equal(np.asarray(c).view(np.int32), rc.view(np.int32))


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 7, 4097])
def test_integrate_with_members_beyond_the_range_equals_xla(n):
    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    rng = np.random.default_rng(n)
    q, p = rng.uniform(-3, 3, n).astype(np.float32), rng.uniform(-1, 1, n).astype(np.float32)
    q[n // 2] = 3.0e9  # far beyond TRIG_BOUND: the bounded form would be wrong there
    if n > 2:
        q[1] = 2.0e5  # just beyond it
    run = lambda backend: jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.05, steps=300, backend=backend))
    got = run("auto")(jnp.asarray(q), jnp.asarray(p))
    ref = run("xla")(jnp.asarray(q), jnp.asarray(p))
    assert "triton_kernel_call" in _lowered(run("auto"), q, p)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=2e-5, atol=2e-4)


def _lowered(f, q, p):
    return jax.jit(f).lower(jnp.asarray(q), jnp.asarray(p)).as_text()


@pytest.mark.gpu
def test_gradient_with_members_beyond_the_range_equals_direct(monkeypatch):
    """The default gradient (fused-loop kernels with the bounded forms and their redo) with far members
    equals the direct adjoint on XLA, and on the far members the libdevice-only kernels. Orbits well inside
    the separatrix: near it float32 itself limits the gradient (H200, q0 ~ U(-3, 3), p0 ~ U(-1, 1), the most
    sensitive member: float64 -10169.5; float32 -10058.9 fused kernels, -10209.9 direct on XLA, both ~1% off)."""
    from tpjax.codegen import triton_loop

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    rng = np.random.default_rng(3)
    q, p = rng.uniform(-1.5, 1.5, 4097).astype(np.float32), rng.uniform(-0.5, 0.5, 4097).astype(np.float32)
    far = [5, 2000]
    q[far] = 2.0e5, 3.0e9

    def loss(q, p, **kw):
        qT, pT = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.05, steps=300, **kw))(q, p)
        return jnp.sum(jnp.sin(qT)) + jnp.sum(pT**2)

    grad = lambda: jax.jit(jax.grad(loss, argnums=(0, 1)))
    assert "fused_loop_kernel" in kernel_names(grad().lower(jnp.asarray(q), jnp.asarray(p)).as_text())
    got = grad()(q, p)
    want = jax.jit(jax.grad(lambda a, b: loss(a, b, backend="xla", adjoint="direct"), argnums=(0, 1)))(q, p)
    monkeypatch.setattr(triton_loop, "uses_bounded_trig", lambda *progs: False)
    plain = grad()(q, p)
    for a, b, c in zip(got, want, plain, strict=True):
        a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
        print("far members: bounded", a[far], "libdevice-only", c[far], "direct", b[far])
        scale = max(float(np.abs(np.delete(b, far)).max()), 1.0)  # of the members in range
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * scale)
        np.testing.assert_allclose(a[far], c[far], rtol=1e-6, atol=0)
