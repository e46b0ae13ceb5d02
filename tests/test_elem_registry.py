"""The ELEM registry (tpjax/ir/elem_table.py) is the one list of ELEM functions: every consumer covers every
registered function. For each one: the primitive evaluates it (and agrees with the numpy fold), its
derivative passes check_grads, simplify folds it, the frontend lowers its jaxpr spelling to it, the verifier
accepts it, the Triton emitter has an expression for it; and one H using every function compiles to a fused
Triton kernel (PTX for sm_90, on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

import tpjax
from tpjax import primitives as P
from tpjax.codegen import triton_emit
from tpjax.frontend.trace import trace
from tpjax.ir import elem_table, ops, verify
from tpjax.ir.elem_table import ELEM
from tpjax.ir.node import Instr, Program
from tpjax.ir.ops import Op
from tpjax.passes.simplify import simplify
from tpjax.structures import resolve

jax.config.update("jax_enable_x64", True)

MATH = sorted(n for n, f in ELEM.items() if f.kind != elem_table.LAYOUT_KIND)
PARAMS = {"ipow": {"n": 3}}
X = np.array([0.21, 0.47, 0.73])  # inside every function's domain (asin, acos, atanh, log, sqrt, ...)
Y = np.array([1.3, 0.6, 2.1])


def _args(name):
    return (X, Y) if ELEM[name].arity == 2 else (X,)


def test_new_functions_are_registered():
    for name in ("erf", "log1p", "expm1", "sinh", "cosh", "atan", "atan2", "abs"):
        assert name in ELEM and name in ops.ELEM_FUNCS
    assert set(ops.ELEM_FUNCS) == set(ELEM)


@pytest.mark.parametrize("name", MATH)
def test_primitive_matches_fold_and_differentiates(name):
    f, p = ELEM[name], PARAMS.get(name, {})
    y = P.elem(name, *map(jnp.asarray, _args(name)), **p)
    np.testing.assert_allclose(np.asarray(y), np.asarray(f.fold(*_args(name), **p), np.float64), rtol=1e-13)
    check_grads(lambda *xs: P.elem(name, *xs, **p), tuple(map(jnp.asarray, _args(name))), order=1,
                modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("name", MATH)
def test_simplify_folds(name):
    f, p = ELEM[name], PARAMS.get(name, {})
    consts = [Instr(Op.GRAD_INIT, (f"T{k}",), (float(v[0]),), dtype="f64") for k, v in enumerate(_args(name))]
    regs = tuple(i.dst[0] for i in consts)
    e = Instr(Op.ELEM, ("T9",), regs, (("func", name), *p.items()), dtype="f64")
    prog = Program((*consts, e, Instr(Op.STORE, ("ptr_x",), ("T9",), dtype="f64")))
    verify(prog)
    folded = next(i for i in simplify(prog).instrs if i.dst == ("T9",))
    assert folded.op is Op.GRAD_INIT
    assert folded.args[0] == pytest.approx(float(f.fold(*(v[0] for v in _args(name)), **p)), rel=1e-14)


@pytest.mark.parametrize("jax_name", sorted(elem_table.BY_JAX_NAME))
def test_frontend_lowers_the_jaxpr_name(jax_name):
    func = elem_table.BY_JAX_NAME[jax_name]
    lax_fn = getattr(lax, jax_name)
    n = ELEM[func].arity

    def H(q, p):
        return jnp.sum(lax_fn(*(q, p)[:n]) + p**2)

    q = jnp.asarray(X)
    jaxpr = jax.make_jaxpr(H)(q, q)
    assert jax_name in {e.primitive.name for e in jaxpr.eqns}
    tr = trace(H, (q, jnp.asarray(Y)), resolve("canonical"))
    fwd = tpjax.compile(H, (q, jnp.asarray(Y)), method="implicit_midpoint").source
    assert any(i.op is Op.ELEM and i.attr("func") == func for i in fwd.instrs), fwd
    assert fwd.fully_tpir and tr.grads  # no OPAQUE fallback, forward or backward


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("name", MATH)
def test_triton_emitter_has_an_expression(name, dtype):
    f = ELEM[name]
    em = triton_emit._Emitter(dtype, "r_", "{op} is opaque")
    regs = ("S0", "S1")[: f.arity]
    for r in regs:
        em.shapes[r] = ()
    em.instr(Instr(Op.ELEM, ("T0",), regs, (("func", name), *PARAMS.get(name, {}).items()), dtype=dtype))
    (line,) = em.lines
    assert line.startswith("r_T0 = ") and "r_S0" in line and "{" not in line.split("#")[0]
    if f.fast is not None and dtype == "f32":
        assert "if FAST_MATH else" in line


def _every_function(q, p):
    """H using every registered math function once (through the TP-IR primitive itself)."""
    x = 0.2 * jnp.tanh(q) + 0.5
    v = sum(P.elem(n, *((x, 1.5) if ELEM[n].arity == 2 else (x,)), **PARAMS.get(n, {})) for n in MATH)
    return 0.5 * p**2 + v


def test_one_kernel_with_every_function_matches_xla_and_compiles():
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tpjax.codegen import triton as TG

    q0, p0 = jnp.asarray(0.3), jnp.asarray(0.1)
    comp = tpjax.compile(_every_function, (q0, p0), method="leapfrog")
    assert comp.step.fully_tpir
    used = {i.attr("func") for i in comp.source.instrs if i.op is Op.ELEM}
    assert set(MATH) <= used  # every function (and its derivative's functions) reached the program
    q1, _ = tpjax.integrate(_every_function, (q0, p0), dt=0.01, steps=3, method="leapfrog")
    dq = jax.grad(_every_function, 0)
    q, p = q0, p0
    for _ in range(3):
        p = p - 0.005 * dq(q, p)
        q = q + 0.01 * p
        p = p - 0.005 * dq(q, p)
    assert float(q1) == pytest.approx(float(q), rel=1e-13)
    kern = TG.kernel(comp)
    constexprs = {"BLOCK": 128, "FAST_MATH": True}
    sig = {a: "*fp64" if a.endswith("_ptr") else "constexpr" if a in constexprs else "i32" for a in kern.arg_names}
    ptx = triton.compile(ASTSource(fn=kern, signature=sig, constexprs=constexprs), target=GPUTarget("cuda", 90, 32))
    assert ".entry" in ptx.asm["ptx"]


def test_registry_is_data_at_the_bottom():
    """elem_table imports nothing from tpjax (every layer may read it), and no consumer keeps its own table."""
    import inspect
    import re

    from tpjax.frontend import from_jaxpr
    from tpjax.passes import lie_cross
    from tpjax.passes import simplify as simplify_mod
    from tpjax.primitives import elem as elem_mod

    src = inspect.getsource(elem_table)
    assert not re.search(r"^\s*(from|import)\s+(tpjax|\.)", src, re.M)
    for mod in (elem_mod, simplify_mod, triton_emit, from_jaxpr, lie_cross):
        text = inspect.getsource(mod)
        assert not any(f'"{n}":' in text for n in ("tanh", "logistic", "expm1", "erf")), mod.__name__


def test_verifier_checks_the_registry_arity():
    from tpjax.ir.verify import VerifyError

    load = Instr(Op.LOAD, ("S0",), ("ptr_q",), dtype="f64")
    bad = Instr(Op.ELEM, ("T0",), ("S0", "S0"), (("func", "erf"),), dtype="f64")
    with pytest.raises(VerifyError, match="ELEM erf takes 1 operand"):
        verify(Program((load, bad)))
