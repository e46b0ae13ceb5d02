"""GPU: each standalone kernel, launched through ``tpjax._compat.triton_call``, equals a numpy reference.

Skipped without a CUDA device (tests/conftest.py). Every call uses fresh random inputs and
``zeroed_outputs=(0,)``: the output buffer is poisoned with zeros before the launch, and the inputs are
drawn so that every correct output element is nonzero, so an element the kernel failed to write
(a masking or grid bug) cannot pass. Copies are exact and compared bit for bit (signed zeros included);
arithmetic is compared within 2 ulp-sized bounds (fp contraction to fma may round once instead of twice).
"""

import functools
import zlib

import numpy as np
import pytest

pytest.importorskip("triton")
import jax  # noqa: E402

from kernels import lie_cross as LC  # noqa: E402
from kernels import poisson_j as PJ  # noqa: E402
from kernels import symp_step as SS  # noqa: E402
from tpjax._compat import triton_call  # noqa: E402

pytestmark = pytest.mark.gpu

SIZES = (1, 7, 128, 1000, 4097)
YOSHIDA_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))  # not a float32: a float64 kernel must keep all its digits
UINT = {np.dtype("float32"): np.uint32, np.dtype("float64"): np.uint64}


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == "float64"):  # float64 arrays need x64 while tracing and running
        yield np.dtype(request.param)


def rng_for(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def nonzero(rng, shape, dtype):
    """Random values with |x| in [0.5, 2) and random sign: never zero."""
    return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def assert_within(out, ref, scale, dtype):
    """|out - ref| <= 2 eps * scale elementwise, where ``scale`` bounds the terms' magnitudes."""
    out = np.asarray(out)
    assert out.dtype == dtype and out.shape == ref.shape
    err = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    bound = 2 * np.finfo(dtype).eps * scale.astype(np.float64)
    bad = np.flatnonzero(~(err <= bound))
    assert bad.size == 0, f"{bad.size} elements off, first at {bad[0]}: {out.flat[bad[0]]} vs {ref.flat[bad[0]]}"


def assert_bitwise(out, ref):
    out = np.asarray(out)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out.view(UINT[ref.dtype]), ref.view(UINT[ref.dtype]))


@pytest.mark.parametrize("n", SIZES)
def test_symp_step(dtype, n):
    rng = rng_for("symp_step", n, dtype.name)
    s, f = nonzero(rng, (n,), dtype), nonzero(rng, (n,), dtype) * dtype.type(100)  # |c f| < 0.3 < |s|
    step = jax.jit(lambda s, f, dt: SS.symp_step_call(triton_call, s, f, dt, coef=YOSHIDA_W1, zeroed_outputs=(0,)))
    for dt in rng.uniform(1e-4, 1e-3, 2):  # two step sizes, one compiled kernel
        dt = np.asarray(dt, dtype)
        c = dtype.type(YOSHIDA_W1) * dt
        assert_within(step(s, f, dt), s + c * f, np.abs(s) + np.abs(c * f), dtype)
    assert step._cache_size() == 1, "changing dt must not retrace or recompile"


def test_symp_step_in_place(dtype):
    rng = rng_for("symp_step_in_place", dtype.name)
    s, f, dt = nonzero(rng, (4097,), dtype), nonzero(rng, (4097,), dtype), np.asarray(0.01, dtype)
    step = jax.jit(lambda s, f, dt: SS.symp_step_call(triton_call, s, f, dt, input_output_aliases={0: 0}))
    c = dtype.type(1.0) * dt
    assert_within(step(s, f, dt), s + c * f, np.abs(s) + np.abs(c * f), dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("jtype", ["PASS", "NEGATE"])
def test_poisson_j_canonical(dtype, n, jtype):
    rng = rng_for("poisson_j", jtype, n, dtype.name)
    g = nonzero(rng, (n,), dtype)
    g[3::5] = 0.0  # signed zeros: NEGATE must give -0.0 for +0.0 (and the reverse), bit for bit
    g[4::5] = -0.0
    apply = jax.jit(lambda g: PJ.poisson_j_call(triton_call, g, type=jtype, zeroed_outputs=(0,)))
    assert_bitwise(apply(g), g if jtype == "PASS" else -g)


def cross_reference(l, g):
    """numpy L x g in the operands' dtype, and the bound scale |a b| + |c d| of each component."""
    pairs = [((1, 2), (2, 1)), ((2, 0), (0, 2)), ((0, 1), (1, 0))]
    ref = np.stack([l[..., i] * g[..., j] - l[..., k] * g[..., m] for (i, j), (k, m) in pairs], axis=-1)
    scale = np.stack([np.abs(l[..., i] * g[..., j]) + np.abs(l[..., k] * g[..., m]) for (i, j), (k, m) in pairs], -1)
    return ref, scale


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("launch", [LC.lie_cross_call, PJ.poisson_j_lie_call], ids=["lie_cross", "poisson_j_lie"])
def test_lie_kernels(dtype, n, launch):
    rng = rng_for(launch.__name__, n, dtype.name)
    l, g = nonzero(rng, (n, 3), dtype), nonzero(rng, (n, 3), dtype)
    g[:, 0] *= 100  # keeps every component of L x g away from zero (|1st term| > |2nd| or the reverse)
    l[:, 2] *= 100
    ref, scale = cross_reference(l, g)
    assert np.all(np.abs(ref) > 0.1)
    out = jax.jit(lambda l, g: launch(triton_call, l, g, zeroed_outputs=(0,)))(l, g)
    assert_within(out, ref, scale, dtype)


def test_lie_kernels_flatten_leading_axes(dtype):
    rng = rng_for("lie_batch", dtype.name)
    l, g = nonzero(rng, (4, 5, 3), dtype), nonzero(rng, (4, 5, 3), dtype)
    ref, scale = cross_reference(l, g)
    for launch in (LC.lie_cross_call, PJ.poisson_j_lie_call):
        out = jax.jit(functools.partial(launch, triton_call, block=8))(l, g)  # 20 systems, 3 programs
        assert_within(out, ref, scale, dtype)
