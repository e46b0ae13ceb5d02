"""Mixed precision: the Precision policy, the precision pass, Kahan-compensated steps."""

import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from tests.hamiltonians import ZOO  # noqa: E402
from tpjax.codegen import reference  # noqa: E402
from tpjax.compiler import compile_hamiltonian  # noqa: E402
from tpjax.integrators import METHODS  # noqa: E402
from tpjax.ir import Op, parse, to_text, verify  # noqa: E402
from tpjax.passes import PIPELINE, precision  # noqa: E402
from tpjax.precision import Precision  # noqa: E402

MIXED = Precision(grad="float64", step="float32")


def compiled(name, policy=MIXED, dtype=jnp.float32, method="leapfrog"):
    H, state = ZOO[name]
    pipe = PIPELINE + (("precision", precision(policy)),)
    return compile_hamiltonian(H, state(dtype), METHODS[method], "canonical", pipeline=pipe)


def test_policy_validation():
    assert Precision() == Precision("float32", "float32", False)
    assert Precision(grad="f64", step=np.float32) == MIXED
    with pytest.raises(ValueError, match=r"Precision\.grad must be one of"):
        Precision(grad="float128")
    with pytest.raises(ValueError, match=r"Precision\.step"):
        Precision(step="int32")
    with pytest.raises(TypeError, match="compensated"):
        Precision(compensated="yes")


def test_float64_without_x64_raises_a_clear_error():
    code = textwrap.dedent("""
        from tpjax.precision import Precision
        Precision(grad="float32").check()
        try:
            Precision(grad="float64").check()
        except ValueError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"JAX_PLATFORMS": "cpu", "JAX_ENABLE_X64": "0", "PATH": ""},
                         cwd=pathlib.Path(__file__).parents[1])  # fmt: skip
    assert "Precision(grad='float64')" in out.stdout
    assert "jax.config.update('jax_enable_x64', True)" in out.stdout


def test_precision_pass_golden():
    before = parse(
        textwrap.dedent("""
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f32[]
        02 LOAD S1, ptr_p : f32[]
        03 LOAD C0, ptr_c0 : f32[]
        ; Phase 2: backward | kick
        04 ELEM T0, sin, S0 : f32[]
        05 FMA G0, T0, C0, 0.0 : f32[]
        ; Phase 4: integrate | kick
        06 SYMP_STEP S1, G0, -1.0*dt : f32[]
        07 STORE ptr_q, S0 : f32[]
        08 STORE ptr_p, S1 : f32[]
        09 STORE ptr_force, G0 : f32[]
    """)
    )
    out = verify(precision(MIXED)(before))
    assert to_text(out) == textwrap.dedent("""\
        ; TP-IR  precision=f64/f32
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f32[]
        02 LOAD      S1, ptr_p                          : f32[]
        03 LOAD      C0, ptr_c0                         : f32[]
        ; Phase 2: backward | kick
        04 ELEM      T1, convert, S0, dtype=float64     : f64[]  ; S0 in f64
        05 ELEM      T2, convert, C0, dtype=float64     : f64[]  ; C0 in f64
        06 ELEM      T0, sin, T1                        : f64[]
        07 FMA       G0, T0, T2, 0.0                    : f64[]
        ; Phase 4: integrate | kick
        08 SYMP_STEP S1, G0, -1.0*dt                    : f32[]
        09 STORE     ptr_q, S0                          : f32[]
        10 STORE     ptr_p, S1                          : f32[]
        11 ELEM      T3, convert, G0, dtype=float32     : f32[]  ; G0 in f32
        12 STORE     ptr_force, T3                      : f32[]""")


@pytest.mark.parametrize("name", ["pendulum", "kepler", "fpu"])
def test_mixed_listing_and_run(name):
    comp = compiled(name)
    for i in comp.step.instrs:
        if i.op is Op.SYMP_STEP or (i.op in (Op.LOAD, Op.STORE) and i.args[0] in ("ptr_q", "ptr_p")):
            assert i.dtype == "f32", to_text(comp.step)
        elif i.phase in ("backward", "poisson") and i.op is not Op.LOAD:
            assert i.dtype == "f64", to_text(comp.step)
    assert " : f64[" in str(comp) and " : f32[" in str(comp)
    q, p = ZOO[name][1](jnp.float32)
    inputs = {"ptr_q": q, "ptr_p": p, "ptr_force": reference.run(comp.prologue, {"ptr_q": q})["ptr_force"]}
    out = reference.run(comp.step, inputs, jnp.float32(0.05))
    assert out["ptr_q"].dtype == out["ptr_p"].dtype == out["ptr_force"].dtype == jnp.float32
    q64, p64 = ZOO[name][1]()
    ref = compiled(name, Precision("float64", "float64"), jnp.float64)
    force = reference.run(ref.prologue, {"ptr_q": q64})["ptr_force"]
    want = reference.run(ref.step, {"ptr_q": q64, "ptr_p": p64, "ptr_force": force}, 0.05)
    np.testing.assert_allclose(out["ptr_p"], want["ptr_p"], rtol=1e-6, atol=1e-6)


def test_prologue_and_energy_programs_pass_through():
    comp = compiled("kepler", Precision(grad="float64", compensated=True))
    for prog in (comp.prologue, comp.energy):
        out = verify(precision(Precision(grad="float64", compensated=True))(prog))
        assert [i.dtype for i in out.instrs if i.op is Op.STORE] == [i.dtype for i in prog.instrs if i.op is Op.STORE]
    pro = precision(MIXED)(comp.prologue)
    assert {i.dtype for i in pro.instrs if i.phase == "backward"} == {"f64"}
    q, _ = ZOO["kepler"][1](jnp.float32)
    force = reference.run(pro, {"ptr_q": q})["ptr_force"]
    assert force.dtype == jnp.float32
    np.testing.assert_allclose(force, reference.run(comp.prologue, {"ptr_q": q})["ptr_force"], rtol=1e-6)


def test_state_dtype_must_match_the_policy():
    with pytest.raises(ValueError, match=r"Precision\(step='float32'\) but the state ptr_q is f64"):
        compiled("harmonic", MIXED, jnp.float64)


def _long_run(policy, dtype, n=20000, dt=2.0**-10):
    comp = compiled("harmonic", policy, dtype)
    q, p = ZOO["harmonic"][1](dtype)
    carried = [i.args[0] for i in comp.step.instrs if i.op is Op.LOAD and i.args[0] not in ("ptr_q", "ptr_p")]
    init = {"ptr_force": reference.run(comp.prologue, {"ptr_q": q})["ptr_force"]}
    z0 = (q, p) + tuple(init.get(ptr, jnp.zeros_like(q)) for ptr in carried)  # compensations start at 0

    def body(_, z):
        out = reference.run(comp.step, dict(zip(("ptr_q", "ptr_p", *carried), z, strict=True)), jnp.asarray(dt, dtype))
        return tuple(out[ptr] for ptr in ("ptr_q", "ptr_p", *carried))

    return comp, jax.jit(lambda z: jax.lax.fori_loop(0, n, body, z))(z0)[:2]


def test_kahan_compensated_steps_remove_the_roundoff_walk():
    _, (q64, p64) = _long_run(Precision("float64", "float64"), jnp.float64)
    _, (q, p) = _long_run(Precision(), jnp.float32)
    comp, (qk, pk) = _long_run(Precision(compensated=True), jnp.float32)
    assert comp.step.count(Op.SYMP_STEP) == 0 and ("kahan", "1") in comp.step.meta
    assert {ptr for ptr, _ in comp.step.outputs()} >= {"ptr_q_comp", "ptr_p_comp"}
    assert qk.dtype == jnp.float32
    plain = float(jnp.max(jnp.abs(jnp.concatenate([q - q64, p - p64]))))
    kahan = float(jnp.max(jnp.abs(jnp.concatenate([qk - q64, pk - p64]))))
    assert kahan < plain / 100, (plain, kahan)  # measured: 1.5e-5 -> 1.2e-8 after 20000 steps
