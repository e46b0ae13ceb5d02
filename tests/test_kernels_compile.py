"""The hand-written kernels compile for sm_90 on a CPU-only machine and emit the promised instructions.

PTX op counts are per element: kernels are compiled with BLOCK = 32 * num_warps, one element (or system)
per thread. LIE_CROSS's "6 mul + 3 sub" contract is checked on the Triton IR (before fp contraction) and
on PTX compiled with ``enable_fp_fusion=False``; with fusion on (the default) ptxas-level code is
3 mul + 3 fma, which is also asserted so a change in Triton's contraction is noticed.
"""

import ast
import pathlib
import re
import struct

import pytest

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import kernels  # noqa: E402
from kernels import lie_cross as LC  # noqa: E402
from kernels import poisson_j as PJ  # noqa: E402
from kernels import symp_step as SS  # noqa: E402
from tpjax import _compat  # noqa: E402

NUM_WARPS = 4
BLOCK = 32 * NUM_WARPS
TRITON_TYPES = {"float32": "fp32", "float64": "fp64"}
BITS = {"float32": 32, "float64": 64}
YOSHIDA_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))  # not representable in float32: checks constant precision
_CACHE = {}


@pytest.fixture(autouse=True)
def _triton_cache_dir(tmp_path_factory, monkeypatch):
    # importing jax_triton (anywhere in the session) sets TRITON_CACHE_DIR="", which breaks triton.compile.
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))


def compile_kernel(fn, dtype, fusion=True, **constexprs):
    """Compile ``fn`` for sm_90: ``*_ptr`` args are pointers of ``dtype``, CAPS constexpr, others i32."""
    key = (fn.__name__, dtype, fusion, tuple(sorted(constexprs.items())))
    if key not in _CACHE:
        ty = TRITON_TYPES[dtype]
        sig = {a: f"*{ty}" if a.endswith("_ptr") else "constexpr" if a.isupper() else "i32" for a in fn.arg_names}
        assert sorted(a for a, t in sig.items() if t == "constexpr") == sorted(constexprs), "naming convention"
        src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
        opts = {"num_warps": NUM_WARPS, "enable_fp_fusion": fusion}
        _CACHE[key] = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts).asm
    return _CACHE[key]


def ptx_float_ops(ptx, bits):
    """Counts of float arithmetic instructions, keyed without rounding modifier ('mul', 'fma', ...)."""
    ops = re.findall(rf"^\s*(mul|fma|sub|add|neg|div)(?:\.r[nzmp])?\.f{bits}\b", ptx, re.M)
    return {op: ops.count(op) for op in set(ops)}


def ttir_ops(ttir):
    ops = re.findall(r"= (arith\.(?:mulf|addf|subf|negf|divf))\b", ttir)
    return {op.removeprefix("arith."): ops.count(op) for op in set(ops)}


def assert_masked(ttir, n_loads, n_stores):
    """Every tensor load and every store carries a mask derived from ``< n``."""
    tensor_loads = re.findall(r"tt\.load (%[\w.]+)(, %[\w.]+)? : tensor<", ttir)
    stores = re.findall(r"tt\.store %[\w.]+, %[\w.]+(, %[\w.]+)? :", ttir)
    assert len(tensor_loads) == n_loads and all(mask for _, mask in tensor_loads), tensor_loads
    assert len(stores) == n_stores and all(stores), stores
    assert re.search(r"arith\.cmpi slt, %[\w.]+, %[\w.]+ : tensor<", ttir)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_symp_step_kernel(dtype):
    asm = compile_kernel(SS.symp_step_kernel, dtype, COEF=YOSHIDA_W1, BLOCK=BLOCK)
    assert_masked(asm["ttir"], n_loads=2, n_stores=1)
    assert re.search(r"tt\.load %dt_ptr :", asm["ttir"]), "dt must be loaded at run time, not baked in"
    assert ttir_ops(asm["ttir"]) == {"mulf": 2, "addf": 1}  # (COEF*dt) * f + s
    assert ptx_float_ops(asm["ptx"], BITS[dtype]) == {"mul": 1, "fma": 1}  # one rounding per element
    fmt = {"float32": (">f", "0f"), "float64": (">d", "0d")}[dtype]  # PTX spelling of float constants
    coef_hex = fmt[1] + struct.pack(fmt[0], YOSHIDA_W1).hex().upper()
    assert coef_hex in asm["ptx"], "COEF must be materialised at full precision of the dtype"
    unfused = compile_kernel(SS.symp_step_kernel, dtype, fusion=False, COEF=0.5, BLOCK=BLOCK)
    assert ptx_float_ops(unfused["ptx"], BITS[dtype]) == {"mul": 2, "add": 1}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("jtype", ["PASS", "NEGATE"])
def test_poisson_j_canonical_kernel(dtype, jtype):
    asm = compile_kernel(PJ.poisson_j_canonical_kernel, dtype, TYPE=PJ.TYPES[jtype], BLOCK=BLOCK)
    assert_masked(asm["ttir"], n_loads=1, n_stores=1)
    assert ptx_float_ops(asm["ptx"], BITS[dtype]) == {}  # no 0 - g: that would turn -0 into +0
    sign_flip = re.findall(rf"xor\.b{BITS[dtype]}\s+%\w+, %\w+, {-(2 ** (BITS[dtype] - 1))};", asm["ptx"])
    if jtype == "PASS":
        assert ttir_ops(asm["ttir"]) == {} and not sign_flip
    else:
        assert ttir_ops(asm["ttir"]) == {"mulf": 1} and len(sign_flip) == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lie_cross_kernel_is_6_mul_3_sub(dtype):
    asm = compile_kernel(LC.lie_cross_kernel, dtype, BLOCK=BLOCK)
    assert_masked(asm["ttir"], n_loads=6, n_stores=3)
    assert ttir_ops(asm["ttir"]) == {"mulf": 6, "subf": 3}
    unfused = compile_kernel(LC.lie_cross_kernel, dtype, fusion=False, BLOCK=BLOCK)
    assert ptx_float_ops(unfused["ptx"], BITS[dtype]) == {"mul": 6, "sub": 3}
    fused = ptx_float_ops(asm["ptx"], BITS[dtype])
    assert fused.get("mul") == 3 and fused.get("fma") == 3 and "add" not in fused and "sub" not in fused


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisson_j_lie_kernel_is_matrix_product(dtype):
    asm = compile_kernel(PJ.poisson_j_lie_kernel, dtype, BLOCK=BLOCK)
    assert_masked(asm["ttir"], n_loads=6, n_stores=3)
    assert ttir_ops(asm["ttir"]) == {"mulf": 9, "addf": 6, "subf": 3}  # 3 subf = the negated entries
    unfused = compile_kernel(PJ.poisson_j_lie_kernel, dtype, fusion=False, BLOCK=BLOCK)
    assert ptx_float_ops(unfused["ptx"], BITS[dtype]) == {"mul": 9, "add": 6, "sub": 3}


@triton.jit
def _leapfrog_kernel(q_ptr, p_ptr, dt_ptr, n, steps, qo_ptr, po_ptr, BLOCK: tl.constexpr):
    """Test-only 'generated' kernel: harmonic-oscillator leapfrog in registers from the device functions."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    q = tl.load(q_ptr + offs, mask=mask)
    p = tl.load(p_ptr + offs, mask=mask)
    dt = tl.load(dt_ptr)
    for _ in range(steps):
        p = SS.symp_step(p, PJ.poisson_j_negate(q), dt, 0.5)
        q = SS.symp_step(q, PJ.poisson_j_pass(p), dt, 1.0)
        p = SS.symp_step(p, PJ.poisson_j_negate(q), dt, 0.5)
    tl.store(qo_ptr + offs, q, mask=mask)
    tl.store(po_ptr + offs, p, mask=mask)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_device_functions_inline_into_a_larger_kernel(dtype):
    asm = compile_kernel(_leapfrog_kernel, dtype, BLOCK=BLOCK)
    assert "call" not in re.sub(r"//.*", "", asm["ptx"]).split(".entry", 1)[1]  # fully inlined
    assert ptx_float_ops(asm["ptx"], BITS[dtype]).get("fma") == 3  # one fma per SYMP_STEP in the loop


def test_every_standalone_kernel_has_a_compile_test():
    tested = {
        "symp_step_kernel",
        "poisson_j_canonical_kernel",
        "lie_cross_kernel",
        "poisson_j_lie_kernel",
        "rigid_body_kernel",
    }  # rigid_body_kernel: tests/test_rigid_body_kernel.py
    assert set(kernels.KERNELS) == tested, "add a compile test (and a gpu test) for the new kernel"


def test_kernel_modules_import_only_triton():
    for mod in (SS, LC, PJ, kernels):
        tree = ast.parse(pathlib.Path(mod.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= {"triton", "triton.language"}, mod.__file__
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 1 or node.module in ("triton", "triton.language"), mod.__file__


from ._launch import Spec as _Spec  # noqa: E402
from ._launch import record as _record  # noqa: E402


@pytest.mark.parametrize("n", [1, 7, 4097])
def test_launchers_pass_grid_scalars_and_out_shapes(n):
    x, dt = _Spec((n,), "float64"), _Spec((), "float64")
    args, kw = SS.symp_step_call(_record, x, x, dt, coef=0.5, block=128, zeroed_outputs=(0,))
    assert args[3] == n and kw["kernel"] is SS.symp_step_kernel and kw["out_shape"] is x
    assert kw["grid"]({"BLOCK": 128, "COEF": 0.5}) == (-(-n // 128),) and kw["zeroed_outputs"] == (0,)
    args, kw = PJ.poisson_j_call(_record, x, type="NEGATE")
    assert args[1] == n and kw["TYPE"] == 1 and kw["grid"](kw) == (-(-n // kw["BLOCK"]),)
    rows = _Spec((n, 3), "float32")
    for launch in (LC.lie_cross_call, PJ.poisson_j_lie_call):
        args, kw = launch(_record, rows, rows, block=64)
        assert args[2] == n and kw["out_shape"] is rows and kw["grid"]({"BLOCK": 64}) == (-(-n // 64),)


def test_launchers_reject_bad_operands():
    f32, f64 = _Spec((5, 3), "float32"), _Spec((5, 3), "float64")
    bad = [
        lambda: SS.symp_step_call(_record, f32, f64, _Spec((), "float32")),  # dtype mismatch
        lambda: SS.symp_step_call(_record, f32, f32, _Spec((2,), "float32")),  # dt not a scalar
        lambda: SS.symp_step_call(_record, _Spec((4,), "int32"), _Spec((4,), "int32"), _Spec((), "int32")),
        lambda: PJ.poisson_j_call(_record, f32, type="LIE"),
        lambda: PJ.poisson_j_call(_record, _Spec((0,), "float32")),
        lambda: LC.lie_cross_call(_record, _Spec((5, 2), "float32"), _Spec((5, 2), "float32")),
        lambda: PJ.poisson_j_lie_call(_record, f32, f64),
    ]
    for launch in bad:
        with pytest.raises(ValueError):
            launch()


def test_triton_call_lowers_to_triton_kernel_call_for_cuda():
    pytest.importorskip("jax_triton")
    import jax
    import jax.numpy as jnp

    call = _compat.triton_call
    s, dt = jax.ShapeDtypeStruct((7, 2), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32)
    text = _compat.lower_text_for_cuda(lambda s, f, dt: SS.symp_step_call(call, s, f, dt, coef=0.5), s, s, dt)
    assert text.count("stablehlo.custom_call @triton_kernel_call(") == 1
    assert re.search(r"@main\(%arg0: tensor<7x2xf32>.*%arg2: tensor<f32>\) -> \(tensor<7x2xf32>", text)
    inplace = lambda s, f, dt: SS.symp_step_call(call, s, f, dt, input_output_aliases={0: 0})
    assert "output_operand_aliases" in _compat.lower_text_for_cuda(inplace, s, s, dt)

    rows = jax.ShapeDtypeStruct((5, 3), jnp.float32)
    for fn in (
        lambda l, g: LC.lie_cross_call(call, l, g) + PJ.poisson_j_lie_call(call, l, g),
        lambda l, g: PJ.poisson_j_call(call, l, type="NEGATE") - PJ.poisson_j_call(call, g),
    ):
        assert _compat.lower_text_for_cuda(fn, rows, rows).count("@triton_kernel_call(") == 2

    for n in (1, 4097):  # n == 1: jax-triton turns the scalar into a constexpr
        with jax.enable_x64(True):
            s64, dt64 = jax.ShapeDtypeStruct((n,), jnp.float64), jax.ShapeDtypeStruct((), jnp.float64)
            text = _compat.lower_text_for_cuda(lambda s, f, dt: SS.symp_step_call(call, s, f, dt), s64, s64, dt64)
        assert "@triton_kernel_call(" in text and f"tensor<{n}xf64>" in text
