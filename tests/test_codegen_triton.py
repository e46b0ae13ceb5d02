"""The fused Triton kernel generator: one force evaluation per step, sm_90 compilation on CPU, lowering.

CPU tests compile the generated kernel for sm_90 (no GPU needed) and lower a jitted ``fused_integrate`` for
CUDA; ``gpu`` tests compare it with the XLA path (``tpjax.integrate``).
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat
from tpjax.ir.node import Instr
from tpjax.ir.ops import Op

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


def pendulum(q, p):
    return p**2 / 2 - jnp.cos(q)


def harmonic(q, p):
    return 0.5 * p**2 + 0.5 * q**2


SYSTEMS = {"pendulum": pendulum, "harmonic": harmonic}
_PTX = {}


@pytest.fixture(autouse=True)
def _triton_cache_dir(tmp_path_factory, monkeypatch):
    # importing jax_triton sets TRITON_CACHE_DIR="", which breaks triton.compile (see tpjax._compat).
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))


def comp_for(name, dtype="float32"):
    z = jnp.zeros((), DTYPES[dtype])
    return tpjax.compile(SYSTEMS[name], (z, z), method="leapfrog")


def loop_body(src):
    lines = src.split("for _ in range(n_steps):", 1)[1].split("# ---- end of time loop", 1)[0]
    return [ln for ln in lines.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def compile_ptx(name, dtype, fast_math, save=False):
    key = (name, dtype, fast_math, save)
    if key not in _PTX:
        kern = TG.kernel(comp_for(name, dtype), save=save)
        ty = TRITON_TYPES[dtype]
        constexprs = {"BLOCK": 128, "FAST_MATH": fast_math}
        sig = {a: f"*{ty}" if a.endswith("_ptr") else "constexpr" if a in constexprs else "i32" for a in kern.arg_names}
        src = ASTSource(fn=kern, signature=sig, constexprs=constexprs)
        opts = {"num_warps": 4}
        _PTX[key] = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts).asm["ptx"]
    return _PTX[key]


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_one_force_evaluation_per_step(name):
    comp = comp_for(name)
    src = TG.generate(comp)
    body = loop_body(src)
    backward = [i for i in comp.step.instrs if i.phase == "backward" and i.op is not Op.LOAD]
    folded = sum(1 for ln in src.split("for _ in range(n_steps):", 1)[1].splitlines() if "-> constant" in ln)
    emitted = [ln for ln in body if "[backward]" in ln and "LOAD" not in ln]
    assert len(emitted) + folded == len(backward)  # every backward op of the step, once, in the loop
    # the FSAL prologue sits before the loop; exactly one gradient (force) block per iteration
    assert sum("STORE ptr_force" in ln for ln in body) == 1
    assert sum("LOAD ptr_force" in ln for ln in body) == 1
    if name == "pendulum":  # float32: sin by kernels.trig (the libdevice redo is a second loop after this one)
        sin = re.compile(r"\bsin_bounded\(")
        assert sum(bool(sin.search(ln)) for ln in body) == 1
        assert len(sin.findall(src)) - sum(bool(sin.search(ln)) for ln in body) == 1  # prologue
    assert len(re.findall(r"symp_step\(", "\n".join(body))) == 3  # kick, drift, kick


@needs_triton
def test_generate_caches_and_reruns_identically():
    comp = comp_for("pendulum")
    assert TG.generate(comp) == TG.generate(comp)
    assert TG.kernel(comp) is TG.kernel(comp)


@needs_triton
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_compiles_for_sm90(name, dtype):
    ptx = compile_ptx(name, dtype, False)
    bits = 32 if dtype == "float32" else 64
    assert re.search(rf"\bfma\.rn\.f{bits}\b", ptx)
    assert "sin.approx" not in ptx
    assert ptx.count("ld.global") >= 3 and ptx.count("st.global") == 2  # q, p, dt in; q, p out


@needs_triton
@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_saving_kernel_compiles_for_sm90(name, dtype):
    ptx = compile_ptx(name, dtype, False, save=True)
    bits = 32 if dtype == "float32" else 64
    assert re.search(rf"\bfma\.rn\.f{bits}\b", ptx)
    # q, p into the saved row (outer loop) and the final q, p; LLVM may version the outer loop for
    # save_every <= 0 (a copy holding only the row stores), so 4 or 6 store instructions; a float32 sin/cos
    # adds the libdevice redo loop with its own row stores (2 or 4 more)
    src = TG.generate(comp_for(name, dtype), save=True)
    redo = "any_out_of_range(trig_amax)" in src
    assert redo == (name == "pendulum" and dtype == "float32")
    assert ptx.count("st.global") in ((6, 8, 10) if redo else (4, 6))
    assert src.count("for _ in range(n_saves):") == 1 + redo and "for _ in range(save_every):" in src
    assert src.count("tl.store(") == 4 + 2 * redo and "n_steps" not in src


@needs_triton
def test_saving_variant_leaves_the_plain_kernel_unchanged():
    comp = comp_for("pendulum")
    plain, saving = TG.generate(comp), TG.generate(comp, save=True)
    assert plain == TG.generate(comp, save=False) and plain != saving
    assert "save_q_ptr" not in plain and plain.count("tl.store(") == 2
    # the step body is the same instructions, one level deeper
    inner = saving.split("for _ in range(save_every):", 1)[1].split("# ---- end of time loop", 1)[0]
    inner = [ln.strip() for ln in inner.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert inner == [ln.strip() for ln in loop_body(plain)]
    # the FSAL prologue runs once, before the outer loop
    assert saving.index("# ---- prologue") < saving.index("for _ in range(n_saves):")


@needs_triton
def test_fast_math_ptx():
    ptx = compile_ptx("pendulum", "float32", True)
    assert "sin.approx.f32" in ptx
    precise = compile_ptx("pendulum", "float32", False)
    assert "sin.approx.f32" not in precise


@needs_triton
def test_lowers_to_triton_kernel_call():
    if not _compat.has_jax_triton():
        pytest.skip("jax-triton not installed")
    comp = comp_for("pendulum")
    q = jnp.linspace(-1.0, 1.0, 1000, dtype=jnp.float32)
    p = jnp.zeros_like(q)
    fn = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, 0.01, 100))
    text = _compat.lower_text_for_cuda(fn, q, p)
    assert text.count("triton_kernel_call") == 1


def test_opaque_raises_clear_error():
    comp = comp_for("pendulum")
    instrs = list(comp.step.instrs)
    k = next(n for n, i in enumerate(instrs) if i.op is Op.ELEM and i.attr("func") == "sin")
    instrs[k] = Instr(Op.OPAQUE, instrs[k].dst, instrs[k].args, (("key", 0), ("name", "erf#0")),
                      dtype="f32", phase="backward")  # fmt: skip
    bad = dataclasses.replace(comp, step=comp.step.with_instrs(instrs))
    assert not bad.step.fully_tpir
    with pytest.raises(NotImplementedError, match=r"OPAQUE.*XLA path"):
        TG.generate(bad)


def test_matrix_state_unrolls_row_major():
    z = jnp.zeros((3, 3), jnp.float32)
    comp = tpjax.compile(lambda q, p: jnp.sum(p**2) / 2 - jnp.sum(jnp.cos(q @ q.T)), (z, z), method="leapfrog")
    src = TG.generate(comp)
    assert "q_ptr + offs * 9 + 8" in src and "q_9" not in src  # nine components, (N, 3, 3) row-major


def test_unsupported_opaque_op_names_itself():
    z = jnp.zeros((4,), jnp.float32)
    comp = tpjax.compile(lambda q, p: jnp.sum(p**2) / 2 + jnp.sum(jnp.sort(q) * jnp.arange(4.0)), (z, z))
    with pytest.raises(NotImplementedError, match=r"OPAQUE sort.*XLA path"):
        TG.generate(comp)


def test_flops_per_step():
    f = TG.flops_per_step(comp_for("pendulum").step)
    assert f["elem"] == 1 and f["flops"] > 0


# ---- on a GPU: the fused kernel equals the XLA path ----------------------------------------------------
@needs_triton
@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 7, 128, 1000, 4097])
@pytest.mark.parametrize("dtype,rtol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_fused_matches_xla(name, dtype, rtol, n):
    dt_ = DTYPES[dtype]
    comp = comp_for(name, dtype)
    rng = np.random.default_rng(n)
    q = jnp.asarray(rng.uniform(-2.0, 2.0, n), dt_)
    p = jnp.asarray(rng.uniform(-1.0, 1.0, n), dt_)
    dt, steps = 0.01, 100
    qf, pf = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, dt, steps))(q, p)
    one = lambda a, b: tpjax.integrate(SYSTEMS[name], (a, b), dt=dt, steps=steps)
    qx, px = jax.jit(jax.vmap(one))(q, p)
    np.testing.assert_allclose(np.asarray(qf), np.asarray(qx), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(pf), np.asarray(px), rtol=rtol, atol=rtol)


@needs_triton
def test_integrate_backend_triton_lowers_to_one_kernel_under_vmap_and_grad(monkeypatch):
    """integrate(backend=...) on CUDA: the fused primitive lowers to one triton_kernel_call; vmap folds into
    it; jax.grad goes through the XLA reference path (no kernel in the backward pass)."""
    import jax
    import jax.numpy as jnp

    import tpjax
    from tpjax import _compat
    from tpjax.executors.fused_integrate import fused_integrate

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    comp = tpjax.compile(H, (jnp.float32(1.0), jnp.float32(0.0)))
    q = jnp.linspace(0.1, 1.0, 64, dtype=jnp.float32)
    f = jax.vmap(lambda a, b: tuple(fused_integrate(comp, a, b, jnp.float32(0.01), (), steps=50)))
    assert _compat.lower_text_for_cuda(f, q, q).count("triton_kernel_call") == 1
    # on the CPU the same primitive runs the reference path and matches integrate(backend="xla")
    ref = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=50, backend="xla"))(q, q)
    out = f(q, q)
    assert jnp.allclose(out[0], ref[0], atol=1e-6) and jnp.allclose(out[1], ref[1], atol=1e-6)
    g = jax.grad(lambda a: jnp.sum(fused_integrate(comp, a, q, jnp.float32(0.01), (), steps=50)[0]))(q)
    g_ref = jax.grad(lambda a: jnp.sum(jax.vmap(
        lambda x, y: tpjax.integrate(H, (x, y), dt=0.01, steps=50, backend="xla"))(a, q)[0]))(q)  # fmt: skip
    assert jnp.allclose(g, g_ref, rtol=1e-5)
    if not _compat.cuda_available():  # on a GPU machine the kernel does run
        with pytest.raises(NotImplementedError, match="backend='triton' cannot run"):
            tpjax.integrate(H, (jnp.float32(1.0), jnp.float32(0.0)), dt=0.01, steps=5, backend="triton")
    with pytest.raises(ValueError, match="fast_math"):
        tpjax.integrate(H, (jnp.float32(1.0), jnp.float32(0.0)), dt=0.01, steps=5, backend="xla", fast_math=True)


@needs_triton
@pytest.mark.gpu
def test_integrate_auto_uses_the_fused_kernel_on_gpu_and_matches_xla():
    import jax
    import jax.numpy as jnp

    import tpjax

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    q = jnp.linspace(-2.0, 2.0, 4097, dtype=jnp.float32)
    p = jnp.zeros_like(q)
    run = lambda backend: jax.jit(jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=200,
                                                                        backend=backend)))  # fmt: skip
    assert "tp_fused_integrate" in str(jax.make_jaxpr(run("auto"))(q, p))
    a, b = run("auto")(q, p), run("xla")(q, p)
    for x, y in zip(a, b, strict=True):
        assert float(jnp.max(jnp.abs(x - y))) < 1e-4
    g = jax.jit(jax.grad(lambda q: jnp.sum(run("auto")(q, p)[0])))(q)
    g_ref = jax.jit(jax.grad(lambda q: jnp.sum(run("xla")(q, p)[0])))(q)
    assert float(jnp.max(jnp.abs(g - g_ref))) < 1e-3


def test_a_generator_defect_warns_and_runs_xla(monkeypatch):
    from tpjax.executors import choice

    comp = comp_for("pendulum")
    monkeypatch.setattr(TG, "generate", lambda c: (_ for _ in ()).throw(KeyError("boom")))
    with pytest.warns(RuntimeWarning, match="kernel generator failed.*KeyError"):
        executor, why = choice.kernel_for(comp, False)
    assert executor is None and "please report" in why
