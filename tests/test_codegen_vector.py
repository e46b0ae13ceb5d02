"""The fused Triton kernel for ensembles of small vector systems (per-system state of shape (d,)).

Each system's d components live in registers (``R_0 .. R_{d-1}``), its SUMs are in-register reductions;
the ensemble arrays are (N, d) row-major. CPU tests check the generated source, compile it for sm_90 and
lower the primitive for CUDA; ``gpu`` tests compare the kernel with the XLA path.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat
from tpjax.executors.fused_integrate import _reference, fused_integrate

try:  # tests that import, compile or launch kernels are marked needs_triton; the rest need no triton
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except ImportError:
    triton = None
needs_triton = pytest.mark.skipif(triton is None, reason="needs triton (the [test] extra installs triton==3.6.0)")

from tpjax.codegen import triton as TG  # noqa: E402

jax.config.update("jax_enable_x64", True)

DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
TRITON_TYPES = {"float32": "fp32", "float64": "fp64"}


def kepler(q, p):
    return 0.5 * jnp.sum(p**2) - 1 / jnp.sqrt(jnp.sum(q**2))


def harmonic3(q, p):
    """3-D isotropic oscillator with a small radial quartic term (so the force has a SUM: |q|^2)."""
    return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2) + 0.05 * jnp.sum(q**2) ** 2


SYSTEMS = {"kepler": (kepler, 2), "harmonic3": (harmonic3, 3)}


@pytest.fixture(autouse=True)
def _triton_cache_dir(tmp_path_factory, monkeypatch):
    # importing jax_triton sets TRITON_CACHE_DIR="", which breaks triton.compile (see tpjax._compat).
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))


def comp_for(name, dtype="float32"):
    H, d = SYSTEMS[name]
    z = jnp.ones((d,), DTYPES[dtype])
    return tpjax.compile(H, (z, z), method="leapfrog")


def ensemble(name, n, dtype, seed=0):
    d = SYSTEMS[name][1]
    rng = np.random.default_rng(seed)
    if name == "kepler":  # near-circular orbits, away from the singularity
        q = np.array([1.0, 0.0]) + rng.uniform(-0.1, 0.1, (n, 2))
        p = np.array([0.0, 1.0]) + rng.uniform(-0.1, 0.1, (n, 2))
    else:
        q, p = rng.uniform(-1.0, 1.0, (n, d)), rng.uniform(-1.0, 1.0, (n, d))
    return jnp.asarray(q, DTYPES[dtype]), jnp.asarray(p, DTYPES[dtype])


def loop_body(src):
    lines = src.split("for _ in range(n_steps):", 1)[1].split("# ---- end of time loop", 1)[0]
    return [ln.strip() for ln in lines.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@needs_triton
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_source_unrolls_components_and_sums(name):
    d = SYSTEMS[name][1]
    src = TG.generate(comp_for(name))
    for x in "qp":
        loads = re.findall(rf"{x}_(\d+) = tl\.load\({x}_ptr \+ offs \* {d} \+ (\d+), mask=mask", src)
        assert loads == [(str(k), str(k)) for k in range(d)]
        stores = re.findall(rf"tl\.store\(out_{x}_ptr \+ offs \* {d} \+ (\d+), {x}_(\d+), mask=mask\)", src)
        assert stores == [(str(k), str(k)) for k in range(d)]
    sums = [ln for ln in loop_body(src) if ln.endswith("] SUM")]
    assert sums  # in-register reductions: every SUM adds the d components of one register
    for ln in sums:
        rhs = ln.split(" = ", 1)[1].split("  #", 1)[0]
        regs = re.findall(r"\b([A-Z]\d+)_(\d+)\b", rhs)
        assert [int(k) for _, k in regs] == list(range(d)) and rhs.count("+") == d - 1
    assert "tl.sum" not in src


def test_balanced_sum_tree():
    comp = tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2) + 0.25 * jnp.sum(q**2) ** 2,
                         (jnp.ones(5, jnp.float32),) * 2, method="leapfrog")  # fmt: skip
    body = loop_body(TG.generate(comp))
    (s,) = [ln for ln in body if ln.endswith("] SUM")]
    rhs = s.split(" = ", 1)[1].split("  #", 1)[0]
    assert re.fullmatch(r"\(\((\w+) \+ (\w+)\) \+ \((\w+) \+ (\w+)\)\) \+ (\w+)", rhs), rhs


@needs_triton
def test_saving_kernel_layout():
    src = TG.generate(comp_for("kepler"), save=True)
    for x in "qp":
        for k in range(2):
            assert f"tl.store(save_{x}_ptr + srow * 2 + {k}, {x}_{k}, mask=mask)" in src


@needs_triton
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("save", [False, True])
def test_compiles_for_sm90(name, dtype, save):
    kern = TG.kernel(comp_for(name, dtype), save=save)
    ty = TRITON_TYPES[dtype]
    constexprs = {"BLOCK": 128, "FAST_MATH": False}
    sig = {a: f"*{ty}" if a.endswith("_ptr") else "constexpr" if a in constexprs else "i32" for a in kern.arg_names}
    src = ASTSource(fn=kern, signature=sig, constexprs=constexprs)
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    assert ".entry fused_step_kernel" in ptx


@needs_triton
def test_vmap_lowers_to_one_triton_kernel_call():
    if not _compat.has_jax_triton():
        pytest.skip("jax-triton not installed")
    comp = comp_for("kepler")
    q, p = ensemble("kepler", 100, "float32")
    f = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=50)))
    assert _compat.lower_text_for_cuda(f, q, p).count("triton_kernel_call") == 1
    g = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=50, save_every=10)))
    text = _compat.lower_text_for_cuda(g, q, p)
    assert text.count("triton_kernel_call") == 1 and "tensor<5x200xf32>" in text


@pytest.mark.parametrize("save_every", [None, 5])
def test_primitive_matches_xla_on_cpu(save_every):
    comp = comp_for("kepler", "float64")
    q, p = ensemble("kepler", 9, "float64")
    dt, steps = 0.01, 20
    out = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, dt, (), steps=steps, save_every=save_every)))(q, p)
    one = lambda a, b: tpjax.integrate(kepler, (a, b), dt=dt, steps=steps, backend="xla")
    qx, px = jax.vmap(one)(q, p)
    np.testing.assert_allclose(out[0], qx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out[1], px, rtol=1e-12, atol=1e-12)
    if save_every is not None:
        assert out[2].shape == (9, steps // save_every, 2)  # vmap's out_axes=0: the ensemble first
        np.testing.assert_allclose(out[2][:, -1], qx, rtol=1e-12, atol=1e-12)
        q5, _ = jax.vmap(lambda a, b: tpjax.integrate(kepler, (a, b), dt=dt, steps=5, backend="xla"))(q, p)
        np.testing.assert_allclose(out[2][:, 0], q5, rtol=1e-12, atol=1e-12)


def test_leading_dims_flatten_and_shape_checked():
    comp = comp_for("kepler", "float64")
    q, p = ensemble("kepler", 6, "float64")
    a = fused_integrate(comp, q.reshape(2, 3, 2), p.reshape(2, 3, 2), 0.01, (), steps=7)
    b = fused_integrate(comp, q, p, 0.01, (), steps=7)
    np.testing.assert_allclose(a[0].reshape(6, 2), b[0], rtol=1e-14)
    with pytest.raises(ValueError, match="per-system shape"):
        fused_integrate(comp, q.T, p.T, 0.01, (), steps=7)


def test_matrix_state_generates():
    z = jnp.ones((3, 3), jnp.float32)
    comp = tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum((q @ q) ** 2), (z, z), method="leapfrog")
    src = TG.generate(comp)
    assert "p_8 = " in src and "p_9" not in src


def test_vector_parameter_is_loaded_from_its_array():
    z = jnp.ones((3,), jnp.float32)
    w = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    comp = tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(w * q**2), (z, z), method="leapfrog")
    src = TG.generate(comp)
    assert "tl.load(c0_ptr + 2)" in src and "c0 = tl.load(c0_ptr)" not in src


def test_traced_integer_parameter_is_refused():
    z = jnp.ones((3,), jnp.float32)

    @jax.jit
    def gen(idx):
        comp = tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2) + jnp.sum(q[idx] ** 2), (z, z), method="leapfrog")
        with pytest.raises(NotImplementedError, match="integer parameter c0 of H is traced"):
            TG.generate(comp)
        return idx

    gen(jnp.array([0, 2]))


def test_too_large_state_raises():
    """Beyond 4096 elements the unrolled form refuses; the tile form holds up to MAX_TILE padded elements
    (4097 -> 8192), and beyond that both refuse, each saying why."""
    from tpjax.codegen.triton_tile import MAX_TILE

    H = lambda q, p: 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q[1:] * q[:-1])
    z = jnp.ones((4097,), jnp.float32)
    comp = tpjax.compile(H, (z, z), method="leapfrog")
    with pytest.raises(NotImplementedError, match="up to 4096 elements"):
        TG.generate(comp, form="unrolled")
    assert "form=tile" in TG.generate(comp).splitlines()[1]
    z = jnp.ones((MAX_TILE + 1,), jnp.float32)
    comp = tpjax.compile(H, (z, z), method="leapfrog")
    with pytest.raises(NotImplementedError, match=f"up to 4096 elements.*the tile form.*more than {MAX_TILE}"):
        TG.generate(comp)


def test_flops_count_components():
    f = TG.flops_per_step(comp_for("kepler").step)
    assert f["fma"] >= 6 and f["other"] >= 1  # 3 symp_steps x 2 components; one 2-term reduction


# ---- GPU: the kernel against XLA ---------------------------------------------------------------------------
@needs_triton
@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 7, 128, 1000, 4097])
@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-4), ("float64", 1e-10)])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("save_every", [None, 20])
def test_fused_matches_xla(name, dtype, rtol, n, save_every):
    comp = comp_for(name, dtype)
    H = SYSTEMS[name][0]
    q, p = ensemble(name, n, dtype, seed=n)
    dt, steps = 0.01, 100
    out = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, dt, steps, save_every=save_every))(q, p)
    one = lambda a, b: tpjax.integrate(H, (a, b), dt=dt, steps=steps, backend="xla")
    qx, px = jax.jit(jax.vmap(one))(q, p)
    np.testing.assert_allclose(np.asarray(out[0]), np.asarray(qx), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(out[1]), np.asarray(px), rtol=rtol, atol=rtol)
    if save_every is not None:
        ref = jax.jit(lambda q, p: _reference(q, p, jnp.asarray(dt, q.dtype), comp=comp, steps=steps,
                                              fast_math=False, save_every=save_every))(q, p)  # fmt: skip
        assert out[2].shape == (steps // save_every, n, SYSTEMS[name][1])
        np.testing.assert_allclose(np.asarray(out[2]), np.asarray(ref[2]), rtol=rtol, atol=rtol)
        np.testing.assert_allclose(np.asarray(out[3]), np.asarray(ref[3]), rtol=rtol, atol=rtol)


@needs_triton
@pytest.mark.parametrize("name", ["fpu", "henon_heiles"])
def test_slice_pad_systems_generate_compile_and_lower(name, tmp_path, monkeypatch):
    """Hamiltonians written with indexing / concatenation (FPU chain, Henon-Heiles) get a fused kernel."""
    import jax
    import jax.numpy as jnp

    import tpjax
    from tests.hamiltonians import ZOO
    from tpjax import _compat
    from tpjax.codegen import triton as TG
    from tpjax.executors.fused_integrate import fused_integrate

    H, s0 = ZOO[name]
    q0, p0 = s0(jnp.float32)
    comp = tpjax.compile(H, (q0, p0))
    src = TG.generate(comp)
    assert "ELEM slice" in src or "ELEM pad" in src
    Q = jnp.stack([q0 * (1 + 0.1 * k) for k in range(16)])
    f = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=20)))
    assert _compat.lower_text_for_cuda(f, Q, Q * 0).count("triton_kernel_call") == 1
    ref = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=20, backend="xla"))(Q, Q * 0)
    out = f(Q, Q * 0)
    for x, y in zip(out, ref, strict=True):
        assert float(jnp.max(jnp.abs(x - y))) < 1e-5


@needs_triton
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["fpu", "henon_heiles"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_slice_pad_systems_fused_equals_xla_gpu(name, dtype):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import tpjax
    from tests.hamiltonians import ZOO

    H, s0 = ZOO[name]
    with jax.enable_x64(dtype == "float64"):
        q0, p0 = s0(jnp.dtype(dtype))
        Q = jnp.stack([q0 * (1 + 0.01 * k) for k in range(1000)])
        P = jnp.zeros_like(Q)
        run = lambda b: jax.jit(jax.vmap(lambda a, c: tpjax.integrate(H, (a, c), dt=0.01, steps=100, backend=b)))
        assert "tp_fused_integrate" in str(jax.make_jaxpr(run("auto"))(Q, P))
        a, b = run("auto")(Q, P), run("xla")(Q, P)
        tol = 1e-4 if dtype == "float32" else 1e-10
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)
