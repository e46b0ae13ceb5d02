"""RIGID_BODY kernel and the FUSED_RIGID_BODY primitive.

CPU: the kernel compiles for sm_90 (float32/float64, orders 2 and 4, FAST_MATH), the device functions
inline, vmap of the primitive lowers to exactly one ``triton_kernel_call`` for CUDA, and the primitive's
XLA path equals ``rigid_body_strang`` / ``rigid_body_order4`` iterated, with gradients.
GPU (``@pytest.mark.gpu``): kernel vs a float64 numpy reference at several sizes, |L|^2 preserved.
"""

import ast
import pathlib
import re
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tpjax import _compat
from tpjax.executors.fused_rigid_body import fused_rigid_body
from tpjax.integrators.rigid_body import YOSHIDA_W0, YOSHIDA_W1, rigid_body_order4, rigid_body_strang

INERTIA = (1.0, 2.0, 3.0)
SIZES = (1, 7, 128, 1000, 4097)
NUM_WARPS = 4
BLOCK = 32 * NUM_WARPS


@pytest.fixture(autouse=True)
def _triton_cache_dir(tmp_path_factory, monkeypatch):
    # importing jax_triton (anywhere in the session) sets TRITON_CACHE_DIR="", which breaks triton.compile.
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def bodies(rng, n):
    """n angular momenta with every component |x| in [0.5, 2) (never zero: poisoned outputs show)."""
    return rng.uniform(0.5, 2.0, (n, 3)) * rng.choice([-1.0, 1.0], (n, 3))


def np_strang(L, dt, inertia):
    """Float64 numpy transcription of ``rigid_body_strang`` (the independent GPU reference)."""
    L = np.array(L, np.float64)
    for axis, tau in ((0, dt / 2), (1, dt / 2), (2, dt), (1, dt / 2), (0, dt / 2)):
        j, k = (axis + 1) % 3, (axis + 2) % 3
        half = 0.5 * (-(tau * L[:, axis]) / inertia[axis])
        sh, ch = np.sin(half), np.cos(half)
        cm1, s = -2.0 * sh * sh, 2.0 * sh * ch
        lj, lk = L[:, j].copy(), L[:, k].copy()
        L[:, j], L[:, k] = lj + (cm1 * lj - s * lk), lk + (s * lj + cm1 * lk)
    return L


def np_run(L, dt, steps, order):
    inertia = np.array(INERTIA)
    for _ in range(steps):
        if order == 2:
            L = np_strang(L, dt, inertia)
        else:
            for w in (YOSHIDA_W1, YOSHIDA_W0, YOSHIDA_W1):
                L = np_strang(L, w * dt, inertia)
    return L


# ------------------------------------------------------------------------------------------- compile (CPU)
triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import kernels  # noqa: E402
from kernels import rigid_body as RB  # noqa: E402
from kernels.lie_cross import load3, store3  # noqa: E402
from tests._float_ops import fma32, fma64, ulp_error  # noqa: E402

_CACHE = {}


def compile_kernel(fn, dtype, **constexprs):
    key = (fn.__name__, dtype, tuple(sorted(constexprs.items())))
    if key not in _CACHE:
        ty = {"float32": "fp32", "float64": "fp64"}[dtype]
        sig = {a: f"*{ty}" if a.endswith("_ptr") else "constexpr" if a.isupper() else "i32" for a in fn.arg_names}
        src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
        opts = {"num_warps": NUM_WARPS}
        _CACHE[key] = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts).asm
    return _CACHE[key]


def calls(ptx):
    """Called functions other than libdevice's huge-argument trig reduction (Payne-Hanek slow path)."""
    body = re.sub(r"//.*", "", ptx).split(".entry", 1)[1]
    return [c for c in re.findall(r"call(?:\.uni)?\s.*?,\s*(\w+)", body) if "trig_reduction" not in c]


@triton.jit
def _one_step_kernel(l_ptr, inertia_ptr, dt_ptr, n, out_ptr, BLOCK: tl.constexpr):
    """Test-only: one ``rigid_body_strang_step`` (the device function) per system."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = rows < n
    l0, l1, l2 = load3(l_ptr, rows, mask)
    i0, i1, i2 = tl.load(inertia_ptr), tl.load(inertia_ptr + 1), tl.load(inertia_ptr + 2)
    l0, l1, l2 = RB.rigid_body_strang_step(l0, l1, l2, tl.load(dt_ptr), i0, i1, i2)
    store3(out_ptr, rows, mask, l0, l1, l2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [2, 4])
def test_kernel_compiles_for_sm90(dtype, order):
    asm = compile_kernel(RB.rigid_body_kernel, dtype, ORDER=order, FAST_MATH=False, BLOCK=BLOCK)
    ttir, ptx = asm["ttir"], asm["ptx"]
    loads = re.findall(r"tt\.load (%[\w.]+)(, %[\w.]+)? : tensor<", ttir)
    stores = re.findall(r"tt\.store %[\w.#]+, %[\w.#]+(, %[\w.#]+)? :", ttir)
    assert len(loads) == 3 and all(m for _, m in loads), loads  # L once, masked
    assert len(stores) == 3 and all(stores), stores  # final L once, masked
    assert re.search(r"tt\.load %dt_ptr :", ttir), "dt must be a run-time operand"
    assert re.search(r"tt\.load %inertia_ptr :", ttir), "inertia must be a run-time operand"
    assert re.search(r"scf\.for", ttir), "the steps loop must stay a loop (n_steps is run-time)"
    assert "approx" not in re.sub(r"//.*", "", ptx).replace("div.approx", "")  # precise sin/cos
    assert calls(ptx) == [], "device functions must inline"


@pytest.mark.parametrize("order", [2, 4])
def test_fast_math_uses_sin_cos_approx(order):
    ptx = compile_kernel(RB.rigid_body_kernel, "float32", ORDER=order, FAST_MATH=True, BLOCK=BLOCK)["ptx"]
    assert "sin.approx.f32" in ptx and "cos.approx.f32" in ptx
    assert calls(ptx) == [] and "trig_reduction" not in ptx  # no libdevice sin/cos left


def test_float64_constants_keep_full_precision():
    ptx = compile_kernel(RB.rigid_body_kernel, "float64", ORDER=4, FAST_MATH=False, BLOCK=BLOCK)["ptx"]
    import struct

    assert "0d" + struct.pack(">d", -0.25 * YOSHIDA_W1).hex().upper() in ptx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_device_function_inlines(dtype):
    ptx = compile_kernel(_one_step_kernel, dtype, BLOCK=BLOCK)["ptx"]
    assert calls(ptx) == []


# ---------------------------------------------------------------- POLY sin/cos (libdevice's polynomials, CPU)
def _horner(x2, C, fma):
    p = fma(x2, C[0], C[1])
    for c in C[2:]:
        p = fma(p, x2, c)
    return p


def np_sincos_poly(x):
    """numpy transcription of ``RB._sincos_poly`` (same coefficient tuples, same fma sequence)."""
    if x.dtype == np.float32:
        x2 = x * x
        s = fma32(_horner(x2, RB.SIN_F32, fma32), fma32(x2, x, 0.0), x)
        return s, fma32(_horner(x2, RB.COS_F32, fma32), x2, 1.0)
    x2 = x * x
    s = fma64(fma64(_horner(x2, RB.SIN_F64, fma64), x2, 0.0), x, x)
    return s, fma64(_horner(x2, RB.COS_F64, fma64), x2, 1.0)


def test_fma_emulation_is_exact():
    from fractions import Fraction

    rng = rng_for("fma")
    a, b = (rng.uniform(-1, 1, 600) * 2.0 ** rng.integers(-30, 3, 600) for _ in range(2))
    c = rng.uniform(-1, 1, 600) * 2.0 ** rng.integers(-60, 3, 600)
    c[:200] = -(a[:200] * b[:200])  # cancellation: the result is the product's rounding error
    exact = [Fraction(x) * Fraction(y) + Fraction(z) for x, y, z in zip(a, b, c, strict=True)]
    np.testing.assert_array_equal(fma64(a, b, c), [float(e) for e in exact])
    a, b, c = a.astype(np.float32), b.astype(np.float32), c.astype(np.float32)
    c[:200] = -(a[:200].astype(np.float64) * b[:200]).astype(np.float32)
    exact = np.array(
        [Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)) for x, y, z in zip(a, b, c, strict=True)]
    )
    got = fma32(a, b, c)
    lo = np.nextafter(got, np.float32(-np.inf)).astype(np.float64)
    hi = np.nextafter(got, np.float32(np.inf)).astype(np.float64)
    g = got.astype(np.float64)
    for e, gi, l, h in zip(exact, g, lo, hi, strict=True):  # got is the nearest float32 (ties: even)
        d = abs(e - Fraction(gi))
        assert d <= abs(e - Fraction(l)) and d <= abs(e - Fraction(h))


def _poly_grid(dtype, n, hi):
    rng = rng_for("poly", dtype)
    fi = np.finfo(dtype)
    tiny, sub = float(fi.tiny), float(fi.smallest_subnormal)
    edges = [hi, np.pi / 4, RB.THETA_POLY, 0.5, 1e-4, tiny, sub]
    logs = np.exp(rng.uniform(np.log(tiny), np.log(hi), n // 4))
    x = np.concatenate([rng.uniform(0, hi, n), logs, edges]).astype(dtype)
    x = np.concatenate([x, np.nextafter(x, dtype(np.inf)), np.nextafter(x, dtype(0))])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poly_sincos_accuracy(dtype):
    dt = np.dtype(dtype).type
    x = _poly_grid(dt, 400_000 if dtype == "float32" else 100_000, 0.8)  # pi/4 and the POLY bound, margin
    s, c = np_sincos_poly(x)
    ref = x.astype(np.float64 if dtype == "float32" else np.longdouble)
    es, ec = ulp_error(s, np.sin(ref), dt), ulp_error(c, np.cos(ref), dt)
    # libdevice's own polynomials: measured max sin 0.94 / cos 1.16 ulp (float32, also exhaustively on
    # [2^-10, pi/4]), 0.80 / 0.86 ulp (float64).
    bound = 1.2 if dtype == "float32" else 0.9
    assert es.max() <= bound and ec.max() <= bound, (es.max(), ec.max())
    # exact symmetry, sin(+-0) = +-0 and sin(x) = x for tiny x (subnormals kept), cos(0) = 1
    sn, cn = np_sincos_poly(-x)
    np.testing.assert_array_equal(sn, -s)
    np.testing.assert_array_equal(cn, c)
    z = np.array([0.0, -0.0, np.finfo(dt).smallest_subnormal, np.finfo(dt).tiny], dt)
    sz, cz = np_sincos_poly(z)
    assert np.array_equal(sz, z) and np.array_equal(np.signbit(sz), np.signbit(z)) and np.all(cz == 1)


@triton.jit
def _libdevice_kernel(x_ptr, s_ptr, c_ptr, BLOCK: tl.constexpr):
    """Test-only: libdevice sin and cos, for their PTX."""
    o = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + o)
    tl.store(s_ptr + o, tl.sin(x))
    tl.store(c_ptr + o, tl.cos(x))


def _hex(v, dtype):
    import struct

    if dtype == "float32":
        return "0f{:08X}".format(*struct.unpack(">I", struct.pack(">f", v)))
    return "0d" + struct.pack(">d", v).hex().upper()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poly_coefficients_are_libdevices(dtype):
    """POLY is libdevice's quadrant-0 sin/cos kernel: same coefficients (libdevice's PTX), and THETA_POLY
    stays inside quadrant 0 of libdevice's reduction (j = rint(x * 2/pi) = 0, the argument unchanged)."""
    import struct

    ptx = compile_kernel(_libdevice_kernel, dtype, BLOCK=BLOCK)["ptx"]
    if dtype == "float32":
        coefs = RB.SIN_F32 + RB.COS_F32
        assert all(np.float32(v) == v for v in coefs)
        assert all(_hex(v, dtype) in ptx for v in coefs)
        two_over_pi = np.float32(struct.unpack(">f", bytes.fromhex("3F22F983"))[0])
        edge = np.float32(RB.THETA_POLY) * np.float32(1.005)  # + roundoff drift of |L| in a chunk
    else:
        table = re.search(r"__cudart_sin_cos_coeffs\[128\] = \{([\d, ]+)\}", ptx).group(1)
        table = struct.unpack("<16d", bytes(int(b) for b in table.split(",")))
        # sin: Horner from the selected leading coefficient, then table[1:7] (table[6] = 0: x2 P(x2));
        # cos: table[8:15] (its leading one also selected), then fma(., x2, 1.0) with table[15] = 1.0.
        assert RB.SIN_F64 == table[:6] and table[6] == 0.0 and RB.COS_F64 == table[8:15] and table[15] == 1
        assert _hex(RB.SIN_F64[0], dtype) in ptx and _hex(RB.COS_F64[0], dtype) in ptx
        two_over_pi = struct.unpack(">d", bytes.fromhex("3FE45F306DC9C883"))[0]
        edge = RB.THETA_POLY * 1.005
    assert edge * two_over_pi <= 0.5


def _rotations_per_step(order):
    return 4 if order == 2 else 12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [2, 4])
def test_precise_kernel_has_block_uniform_poly_branch(dtype, order):
    ptx = re.sub(r"//.*", "", compile_kernel(RB.rigid_body_kernel, dtype, ORDER=order, FAST_MATH=False,
                                             BLOCK=BLOCK)["ptx"])  # fmt: skip
    f = "f32" if dtype == "float32" else "f64"
    S, C = (RB.SIN_F32, RB.COS_F32) if dtype == "float32" else (RB.SIN_F64, RB.COS_F64)
    # the POLY loop: every rotation's sin and cos by fma with the coefficients as immediates, full precision
    lead = rf"fma\.rn\.{f}\s+%\w+, %\w+, {_hex(S[0], dtype)}, {_hex(S[1], dtype)};"
    assert len(re.findall(lead, ptx)) == _rotations_per_step(order)
    lead = rf"fma\.rn\.{f}\s+%\w+, %\w+, {_hex(C[0], dtype)}, {_hex(C[1], dtype)};"
    assert len(re.findall(lead, ptx)) == _rotations_per_step(order)
    for v in S[2:] + C[2:]:
        assert re.search(rf"fma\.rn\.{f}\s+%\w+, %\w+, %\w+, {_hex(v, dtype)};", ptx), v
    # one block-wide max (warp shuffles + shared memory) per chunk, then a real branch on the scalar test
    assert "bar.sync" in ptx and "shfl.sync.bfly" in ptx
    theta2 = _hex(float(np.dtype(dtype).type(RB.THETA_POLY * RB.THETA_POLY)), dtype)
    m = re.search(rf"setp\.gtu\.{f}\s+(%p\d+), %\w+, {theta2};", ptx)
    assert m and re.search(rf"@{m.group(1)} bra\s", ptx)
    # the libdevice loop is still there (fallback for large angles), with its range reduction
    assert "cvt.rni" in ptx


def test_fast_math_has_no_poly():
    for order in (2, 4):
        ptx = compile_kernel(RB.rigid_body_kernel, "float32", ORDER=order, FAST_MATH=True, BLOCK=BLOCK)["ptx"]
        assert _hex(RB.SIN_F32[0], "float32") not in ptx and "bar.sync" not in ptx


@triton.jit
def _sincos_paths_kernel(x_ptr, n, out_ptr, BLOCK: tl.constexpr):
    """Test-only: out[k*n + i] = (POLY sin, POLY cos, libdevice sin, libdevice cos)[k] of x[i]."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    x = tl.load(x_ptr + o, mask=m)
    ps, pc = RB._sincos(x, RB.POLY)
    ls, lc = RB._sincos(x, RB.LIBDEVICE)
    tl.store(out_ptr + o, ps, mask=m)
    tl.store(out_ptr + n + o, pc, mask=m)
    tl.store(out_ptr + 2 * n + o, ls, mask=m)
    tl.store(out_ptr + 3 * n + o, lc, mask=m)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sincos_paths_kernel_compiles(dtype):
    ptx = compile_kernel(_sincos_paths_kernel, dtype, BLOCK=BLOCK)["ptx"]
    S = RB.SIN_F32 if dtype == "float32" else RB.SIN_F64
    assert f"{_hex(S[0], dtype)}, {_hex(S[1], dtype)};" in ptx and "cvt.rni" in ptx


def test_registered_and_imports_only_triton():
    assert kernels.KERNELS["rigid_body_kernel"] is RB.rigid_body_kernel
    tree = ast.parse(pathlib.Path(RB.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= {"triton", "triton.language"}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 1 or node.module in ("triton", "triton.language")


from ._launch import Spec as _Spec  # noqa: E402
from ._launch import record as _record  # noqa: E402


@pytest.mark.parametrize("n", [1, 7, 4097])
def test_launcher_passes_scalars_grid_and_constexprs(n):
    L, i3, dt = _Spec((n, 3), "float32"), _Spec((3,), "float32"), _Spec((), "float32")
    args, kw = RB.rigid_body_call(_record, L, i3, dt, steps=10, order=4, fast_math=True, block=64, num_warps=2)
    assert args[3:] == (n, 10) and kw["kernel"] is RB.rigid_body_kernel and kw["out_shape"] is L
    assert kw["grid"]({"BLOCK": 64}) == (-(-n // 64),)
    assert (kw["ORDER"], kw["FAST_MATH"], kw["BLOCK"], kw["num_warps"]) == (4, True, 64, 2)


def test_launcher_rejects_bad_operands():
    f32 = lambda *s: _Spec(s, "float32")  # noqa: E731
    bad = [
        lambda: RB.rigid_body_call(_record, f32(5, 2), f32(3), f32(), steps=1),
        lambda: RB.rigid_body_call(_record, f32(0, 3), f32(3), f32(), steps=1),
        lambda: RB.rigid_body_call(_record, f32(5, 3), f32(2), f32(), steps=1),
        lambda: RB.rigid_body_call(_record, f32(5, 3), f32(3), _Spec((), "float64"), steps=1),
        lambda: RB.rigid_body_call(_record, f32(5, 3), f32(3), f32(), steps=1, order=3),
        lambda: RB.rigid_body_call(
            _record,
            _Spec((5, 3), "float64"),
            _Spec((3,), "float64"),
            _Spec((), "float64"),
            steps=1,
            fast_math=True,
        ),
    ]
    for launch in bad:
        with pytest.raises(ValueError):
            launch()


def test_vmap_lowers_to_one_kernel_for_cuda():
    pytest.importorskip("jax_triton")
    L = jax.ShapeDtypeStruct((8, 5, 3), jnp.float32)
    I3 = jax.ShapeDtypeStruct((3,), jnp.float32)
    for fm in (False, True):
        f = jax.vmap(lambda l, i, fm=fm: fused_rigid_body(l, i, 0.01, steps=100, order=4, fast_math=fm),
                     in_axes=(1, None))  # fmt: skip
        text = _compat.lower_text_for_cuda(f, L, I3)
        assert text.count("@triton_kernel_call(") == 1
        assert "stablehlo.while" not in text
    # a batched inertia takes the vmapped XLA reference: no kernel
    I2 = jax.ShapeDtypeStruct((2, 3), jnp.float32)
    f = jax.vmap(lambda i: fused_rigid_body(jnp.ones((4, 3)), i, 0.01, steps=3))
    assert "@triton_kernel_call(" not in _compat.lower_text_for_cuda(f, I2)


# ------------------------------------------------------------------------------------------ XLA path (CPU)
@pytest.mark.parametrize("order", [2, 4])
def test_primitive_equals_reference_x64(order):
    with jax.enable_x64(True):
        step = rigid_body_strang if order == 2 else rigid_body_order4
        L = jnp.asarray(bodies(rng_for("x64", order), 12).reshape(3, 4, 3))
        inertia, dt = jnp.asarray(INERTIA), 0.03
        ref = L
        for _ in range(50):
            ref = step(ref, dt, inertia)
        out = jax.jit(lambda L: fused_rigid_body(L, inertia, dt, steps=50, order=order))(L)
        assert out.shape == L.shape and out.dtype == jnp.float64
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(np_run(np.asarray(L).reshape(-1, 3), dt, 50, order).reshape(L.shape), ref,
                                   rtol=0, atol=1e-13)  # fmt: skip
        vm = jax.vmap(lambda l: fused_rigid_body(l, inertia, dt, steps=50, order=order), in_axes=1)(L)
        np.testing.assert_allclose(vm, jnp.moveaxis(ref, 1, 0), rtol=0, atol=1e-14)
        np.testing.assert_array_equal(fused_rigid_body(L, inertia, dt, steps=0), L)


def test_grad_matches_reference_x64():
    with jax.enable_x64(True):
        L = jnp.asarray(bodies(rng_for("grad"), 5))
        inertia, dt = jnp.asarray(INERTIA), jnp.asarray(0.05)

        def loss(run):
            return lambda L, i, dt: jnp.sum(jnp.sin(run(L, i, dt)))

        fused = loss(lambda L, i, dt: fused_rigid_body(L, i, dt, steps=20))
        ref = loss(lambda L, i, dt: jax.lax.fori_loop(0, 20, lambda _, z: rigid_body_strang(z, dt, i), L))
        g = jax.grad(fused, argnums=(0, 1, 2))(L, inertia, dt)
        g_ref = jax.grad(ref, argnums=(0, 1, 2))(L, inertia, dt)
        for a, b in zip(g, g_ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        # batched inertia and dt (per-member parameters) go through the vmapped reference
        inertias, dts = jnp.stack([inertia, 2 * inertia]), jnp.asarray([0.05, 0.02])
        gi = jax.vmap(jax.grad(fused, argnums=1), in_axes=(None, 0, 0))(L, inertias, dts)
        np.testing.assert_allclose(gi[0], g[1], rtol=1e-12, atol=1e-13)


def test_wrapper_rejects_bad_operands():
    with pytest.raises(ValueError):
        fused_rigid_body(jnp.ones((4, 2)), jnp.ones(3), 0.1, steps=1)
    with pytest.raises(ValueError):
        fused_rigid_body(jnp.ones((4, 3)), jnp.ones(3), 0.1, steps=1, order=3)
    with jax.enable_x64(True), pytest.raises(ValueError):
        fused_rigid_body(jnp.ones((4, 3), jnp.float64), jnp.ones(3), 0.1, steps=1, fast_math=True)


# ---------------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [2, 4])
@pytest.mark.parametrize("n", SIZES)
def test_kernel_matches_reference_gpu(dtype, order, n):
    steps, dt = 100, 0.01
    with jax.enable_x64(dtype == "float64"):
        L0 = bodies(rng_for("gpu", dtype, order, n), n).astype(dtype)
        ref = np_run(L0.astype(np.float64), float(np.asarray(dt, dtype)), steps, order)
        norm = np.linalg.norm(ref, axis=1, keepdims=True)
        L = jnp.asarray(L0)
        inertia, dtv = jnp.asarray(INERTIA, dtype), jnp.asarray(dt, dtype)
        kw = dict(steps=steps, order=order)
        call = jax.jit(lambda L: RB.rigid_body_call(_compat.triton_call, L, inertia, dtv, zeroed_outputs=(0,), **kw))
        prim = jax.jit(lambda L: fused_rigid_body(L, inertia, dtv, steps=steps, order=order))
        rtol = 1e-5 if dtype == "float32" else 1e-12
        for out in (call(L), prim(L)):
            out = np.asarray(out, np.float64)
            assert out.shape == (n, 3)
            assert np.all(np.abs(out - ref) <= rtol * norm), np.max(np.abs(out - ref) / norm)
            # |L|^2 preserved to roundoff
            drift = np.abs(np.sum(out**2, 1) - np.sum(L0.astype(np.float64) ** 2, 1)) / norm[:, 0] ** 2
            assert np.max(drift) <= (2e-5 if dtype == "float32" else 1e-13)
        if dtype == "float32":
            fast = jax.jit(lambda L: fused_rigid_body(L, inertia, dtv, steps=steps, order=order, fast_math=True))
            out = np.asarray(fast(L), np.float64)
            assert np.all(np.abs(out - ref) <= 2e-3 * norm), np.max(np.abs(out - ref) / norm)
            drift = np.abs(np.sum(out**2, 1) - np.sum(L0.astype(np.float64) ** 2, 1)) / norm[:, 0] ** 2
            assert np.max(drift) <= 1e-4


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poly_sincos_is_libdevice_bitwise_gpu(dtype):
    """On |x| <= THETA_POLY (normal x), POLY sin/cos == libdevice's bits == the numpy transcription."""
    dt = np.dtype(dtype).type
    x = _poly_grid(dt, 200_000, RB.THETA_POLY)
    x = x[np.abs(x) <= dt(RB.THETA_POLY)]
    n = x.size
    with jax.enable_x64(dtype == "float64"):
        spec = jax.ShapeDtypeStruct((4 * n,), x.dtype)
        grid = (-(-n // BLOCK),)
        kw = dict(kernel=_sincos_paths_kernel, out_shape=spec, grid=grid, BLOCK=BLOCK, num_warps=NUM_WARPS)
        out = jax.jit(lambda x: _compat.triton_call(x, n, **kw))
        ps, pc, ls, lc = np.asarray(out(jnp.asarray(x))).reshape(4, n)
    ns, nc = np_sincos_poly(x)
    np.testing.assert_array_equal(ps.view(np.uint8), ns.view(np.uint8))
    np.testing.assert_array_equal(pc.view(np.uint8), nc.view(np.uint8))
    normal = (np.abs(x) >= np.finfo(dt).tiny) | (x == 0)  # libdevice float32 flushes subnormals
    np.testing.assert_array_equal(ps[normal].view(np.uint8), ls[normal].view(np.uint8))
    np.testing.assert_array_equal(pc[normal].view(np.uint8), lc[normal].view(np.uint8))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("order", [2, 4])
def test_large_angle_block_takes_libdevice_gpu(dtype, order):
    """Block 1 = block 0's bodies plus one large-angle body: it runs libdevice, block 0 POLY; the other
    bodies agree bitwise and match the reference; 150 steps cross chunk boundaries (CHUNK = 64)."""
    steps, dt = 150, 0.01
    with jax.enable_x64(dtype == "float64"):
        L0 = bodies(rng_for("paths", dtype, order), BLOCK).astype(dtype)
        big = L0.copy()
        big[5] *= 200.0  # |L| dt / (2 min I) > THETA_POLY
        Lnp = np.concatenate([L0, big])
        inertia, dtv = jnp.asarray(INERTIA, dtype), jnp.asarray(dt, dtype)
        run = jax.jit(lambda L: RB.rigid_body_call(_compat.triton_call, L, inertia, dtv, steps=steps, order=order,
                                                   block=BLOCK, num_warps=NUM_WARPS, zeroed_outputs=(0,)))  # fmt: skip
        out = np.asarray(run(jnp.asarray(Lnp)), np.float64)
    keep = np.arange(BLOCK) != 5
    # the libdevice-path block and the polynomial-path block agree to roundoff (measured on the H100:
    # 7e-7 in float32, 2e-15 in float64 after the test's steps; the two loops are compiled separately)
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(out[BLOCK:][keep], out[:BLOCK][keep], rtol=0, atol=tol)
    ref = np_run(L0.astype(np.float64), float(np.asarray(dt, dtype)), steps, order)
    norm = np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.all(np.abs(out[:BLOCK] - ref) <= (1e-5 if dtype == "float32" else 1e-12) * norm)
    n0, n1 = np.sum(big[5].astype(np.float64) ** 2), np.sum(out[BLOCK + 5] ** 2)
    assert abs(n1 - n0) <= (2e-5 if dtype == "float32" else 1e-13) * n0


@pytest.mark.gpu
def test_vmapped_primitive_on_gpu_folds_batch():
    L = jnp.asarray(bodies(rng_for("vmap"), 60).reshape(4, 5, 3, 3).astype(np.float32))
    inertia = jnp.asarray(INERTIA, jnp.float32)
    out = jax.jit(jax.vmap(lambda l: fused_rigid_body(l, inertia, 0.01, steps=30), in_axes=2))(L)
    ref = np_run(np.moveaxis(np.asarray(L, np.float64), 2, 0).reshape(-1, 3), float(np.float32(0.01)), 30, 2)
    np.testing.assert_allclose(np.asarray(out, np.float64).reshape(-1, 3), ref, rtol=0, atol=1e-5 * 4)


def test_integrate_so3_rigid_body_cross_lowers_to_the_kernel():
    import jax
    import jax.numpy as jnp

    import tpjax
    from tpjax import _compat

    I = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    H = lambda L: 0.5 * jnp.sum(L**2 / I)
    from tpjax.executors.fused_rigid_body import fused_rigid_body

    L = jnp.ones((64, 3), jnp.float32)
    f = jax.vmap(lambda L: fused_rigid_body(L, I, jnp.float32(0.01), steps=10))
    assert _compat.lower_text_for_cuda(f, L).count("triton_kernel_call") == 1
    # integrate(structure="so3", method="rigid_body") runs it on CUDA (backend="auto"); on the CPU: XLA
    L = L * jnp.linspace(0.5, 1.5, 64, dtype=jnp.float32)[:, None]
    out = jax.vmap(lambda L: tpjax.integrate(H, L, dt=0.01, steps=10, structure="so3", method="rigid_body"))(L)
    assert out.shape == (64, 3)
    from tpjax.integrators.rigid_body import rigid_body_strang

    ref = jax.lax.fori_loop(0, 10, lambda _, x: rigid_body_strang(x, jnp.float32(0.01), I), L)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(f(L), ref, rtol=0, atol=1e-6)
    assert float(jnp.max(jnp.abs(ref - L))) > 1e-3  # the bodies moved


@pytest.mark.gpu
def test_integrate_so3_auto_uses_the_rigid_body_kernel_on_gpu():
    import jax
    import jax.numpy as jnp

    import tpjax

    I = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    H = lambda L: 0.5 * jnp.sum(L**2 / I)
    L = jax.random.normal(jax.random.key(0), (4097, 3), jnp.float32)

    def run(backend):
        f = lambda L: tpjax.integrate(H, L, dt=0.01, steps=200, structure="so3", method="rigid_body", backend=backend)
        return jax.jit(jax.vmap(f))

    assert "tp_fused_rigid_body" in str(jax.make_jaxpr(run("auto"))(L))
    assert float(jnp.max(jnp.abs(run("auto")(L) - run("xla")(L)))) < 1e-4
