"""The optimisation passes: golden IR text per pass, verify() after each, semantics on the zoo, costs."""

import functools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from tests.hamiltonians import ZOO  # noqa: E402
from tpjax import passes  # noqa: E402
from tpjax.codegen import reference  # noqa: E402
from tpjax.compiler import compile_hamiltonian  # noqa: E402
from tpjax.integrators import METHODS  # noqa: E402
from tpjax.ir import Instr, Op, Program, parse, to_text, verify  # noqa: E402
from tpjax.ir.verify import VerifyError  # noqa: E402
from tpjax.passes import PIPELINE, canonical, cse, dce, fsal, fuse_fma, lie_cross, simplify  # noqa: E402
from tpjax.passes.fsal import prologue as fsal_prologue  # noqa: E402
from tpjax.passes.lie_cross import arithmetic_count  # noqa: E402
from tpjax.passes.rewrite import np_dtype  # noqa: E402

BASELINE = (("fsal", fsal), ("dce", dce))


def _text(s: str) -> str:
    return textwrap.dedent(s).strip("\n")


def _inputs(prog: Program, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.args[0]: jnp.asarray(rng.uniform(0.5, 1.5, i.shape), np_dtype(i.dtype))
            for i in prog.instrs if i.op is Op.LOAD}  # fmt: skip


def check_pass(fn, before: str, after: str) -> None:
    """``fn`` maps ``before`` to ``after`` (golden text), verifies, and computes the same STOREs."""
    prog = verify(parse(_text(before)))
    out = verify(fn(prog))
    assert to_text(out) == _text(after)
    assert parse(to_text(out)) == out
    inputs = _inputs(prog)
    want, got = reference.run(prog, inputs, 0.1), reference.run(out, inputs, 0.1)
    for ptr in want:
        np.testing.assert_allclose(got[ptr], want[ptr], rtol=1e-14, atol=1e-14)


def test_simplify_golden():
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        ; Phase 2: backward
        03 GRAD_INIT G0, 1.0 : f64[]
        04 FMA G1, 0.5, G0, 0.0 : f64[]
        05 FMA T0, S0, 1.0, 0.0 : f64[]
        06 FMA T1, T0, G1, 0.0 : f64[]
        07 FMA T2, S1, 0.0, T1 : f64[]
        08 GRAD_INIT G2, 0.0 : f64[]
        09 ACC_GRAD G3, T2, G2 : f64[]
        10 ELEM T3, neg, S1 : f64[]
        11 FMA T4, T3, -1.0, 0.0 : f64[]
        12 ELEM T5, div, 1.0, T4 : f64[]
        13 FMA T6, T5, -1.0, 0.0 : f64[]
        14 ACC_GRAD G4, G3, T6 : f64[]
        15 ELEM T7, recip, 4.0 : f64[]
        16 ELEM G5, broadcast, G0, shape=(3,), bdims=() : f64[3]
        17 FMA G6, G5, T7, G4 : f64[3]
        ; Phase 4: integrate
        18 STORE ptr_q, G6 : f64[3]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        ; Phase 2: backward
        03 GRAD_INIT G0, 1.0                            : f64[]
        04 GRAD_INIT G1, 0.5                            : f64[]
        05 FMA       T1, S0, 0.5, 0.0                   : f64[]
        06 GRAD_INIT G2, 0.0                            : f64[]
        07 ELEM      T3, neg, S1                        : f64[]
        08 ELEM      T5, recip, S1                      : f64[]
        09 ELEM      T6, neg, T5                        : f64[]
        10 ACC_GRAD  G4, T1, T6                         : f64[]
        11 GRAD_INIT T7, 0.25                           : f64[]
        12 GRAD_INIT G5, 1.0                            : f64[3]
        13 FMA       G6, G5, 0.25, G4                   : f64[3]
        ; Phase 4: integrate
        14 STORE     ptr_q, G6                          : f64[3]
    """)  # fmt: skip


def test_simplify_respects_in_place_updates():
    # T0 = copy of the *old* S0; the SYMP_STEP redefines S0 before T0 is read: no copy propagation.
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 FMA       T0, S0, 1.0, 0.0                   : f64[]
        03 ELEM      T1, sin, S0                        : f64[]
        ; Phase 4: integrate
        04 SYMP_STEP S0, T1, 1.0*dt                     : f64[]
        05 ELEM      T2, sin, S0                        : f64[]
        06 FMA       T3, T0, T2, 0.0                    : f64[]
        07 STORE     ptr_q, T3                          : f64[]
    """
    check_pass(simplify, text, text)
    check_pass(cse, text, text)


def test_simplify_keeps_dtype_and_shape():
    # a copy of an f32 register cannot stand for an f64 one, nor a (1,) for a ()
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f32[]
        02 LOAD      S1, ptr_p                          : f64[1]
        03 FMA       T0, S0, 1.0, 0.0                   : f64[]
        04 ELEM      T1, reshape, S1, shape=()          : f64[]
        05 FMA       T2, T0, T1, 0.0                    : f64[]
        06 STORE     ptr_q, T2                          : f64[]
    """
    check_pass(simplify, text, text)


def test_cse_golden():
    check_pass(cse, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        ; Phase 2: backward
        03 GRAD_INIT G0, 1.0 : f64[]
        04 ELEM T0, sin, S0 : f64[]
        05 FMA T1, T0, G0, 0.0 : f64[]
        06 GRAD_INIT G1, 1.0 : f64[]
        07 ELEM T2, sin, S0 : f64[]
        08 FMA T3, G1, T2, 0.0 : f64[]
        09 ACC_GRAD T4, T1, T3 : f64[]
        ; Phase 4: integrate
        10 SYMP_STEP S1, T4, 0.5*dt : f64[]
        ; Phase 2: backward
        11 ELEM T5, sin, S0 : f64[]
        12 ELEM T6, cos, S1 : f64[]
        ; Phase 4: integrate
        13 SYMP_STEP S0, T6, 1.0*dt : f64[]
        ; Phase 2: backward
        14 ELEM T7, sin, S0 : f64[]
        15 ELEM T8, cos, S1 : f64[]
        16 ACC_GRAD T9, T5, T7 : f64[]
        17 ACC_GRAD T10, T9, T8 : f64[]
        ; Phase 4: integrate
        18 STORE ptr_q, T10 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        ; Phase 2: backward
        03 GRAD_INIT G0, 1.0                            : f64[]
        04 ELEM      T0, sin, S0                        : f64[]
        05 FMA       T1, T0, G0, 0.0                    : f64[]
        06 ACC_GRAD  T4, T1, T1                         : f64[]
        ; Phase 4: integrate
        07 SYMP_STEP S1, T4, 0.5*dt                     : f64[]
        ; Phase 2: backward
        08 ELEM      T6, cos, S1                        : f64[]
        ; Phase 4: integrate
        09 SYMP_STEP S0, T6, 1.0*dt                     : f64[]
        ; Phase 2: backward
        10 ELEM      T7, sin, S0                        : f64[]
        11 ACC_GRAD  T9, T0, T7                         : f64[]
        12 ACC_GRAD  T10, T9, T6                        : f64[]
        ; Phase 4: integrate
        13 STORE     ptr_q, T10                         : f64[]
    """)  # fmt: skip


def test_fuse_fma_golden():
    check_pass(fuse_fma, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        03 LOAD C0, ptr_c0 : f64[]
        ; Phase 2: backward
        04 FMA T0, S0, S1, 0.0 : f64[]
        05 FMA T1, T0, 1.0, C0 : f64[]
        06 FMA T2, S0, 2.0, 0.0 : f64[]
        07 FMA T3, T2, 0.5, 0.0 : f64[]
        08 FMA T4, S1, S1, 0.0 : f64[]
        09 ACC_GRAD T5, C0, T4 : f64[]
        10 ACC_GRAD T6, T4, T5 : f64[]
        11 FMA T7, S1, 3.0, 0.0 : f64[]
        12 FMA T8, T7, T6, 0.0 : f64[]
        13 FMA T9, T8, 2.0, 1.0 : f64[]
        14 FMA T10, S0, 4.0, 0.0 : f64[]
        ; Phase 4: integrate
        15 SYMP_STEP S0, T9, 1.0*dt : f64[]
        ; Phase 2: backward
        16 FMA T11, T10, 0.25, 0.0 : f64[]
        17 ACC_GRAD T12, T1, T3 : f64[]
        18 ACC_GRAD T13, T12, T11 : f64[]
        ; Phase 4: integrate
        19 STORE ptr_q, T13 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 LOAD      C0, ptr_c0                         : f64[]
        ; Phase 2: backward
        04 FMA       T0, S0, S1, 0.0                    : f64[]
        05 FMA       T1, S0, S1, C0                     : f64[]
        06 FMA       T2, S0, 2.0, 0.0                   : f64[]
        07 FMA       T3, S0, 1.0, 0.0                   : f64[]
        08 FMA       T4, S1, S1, 0.0                    : f64[]
        09 ACC_GRAD  T5, C0, T4                         : f64[]
        10 ACC_GRAD  T6, T4, T5                         : f64[]
        11 FMA       T7, S1, T6, 0.0                    : f64[]
        12 FMA       T8, T7, 3.0, 0.0                   : f64[]
        13 FMA       T9, T7, 6.0, 1.0                   : f64[]
        14 FMA       T10, S0, 4.0, 0.0                  : f64[]
        ; Phase 4: integrate
        15 SYMP_STEP S0, T9, 1.0*dt                     : f64[]
        ; Phase 2: backward
        16 FMA       T11, T10, 0.25, 0.0                : f64[]
        17 ACC_GRAD  T12, T1, T3                        : f64[]
        18 FMA       T13, T10, 0.25, T12                : f64[]
        ; Phase 4: integrate
        19 STORE     ptr_q, T13                         : f64[]
    """)  # fmt: skip


def test_fuse_fma_every_rule_and_form():
    """Each fusion fires on every form its docstring names, and only there (the mutation run's fuse_fma
    survivors): a negation as the inner product, FMA(1, t, c), a literal first addend, two literal addends,
    a register addend under a scaling, a negated scaling, a product pulled from either factor (the
    rewritten inner loses the outer's comment), through a broadcast (the FMA drops the broadcast's
    attributes), a constant held in a register is not pulled, and an inner addend that is a zero register."""
    check_pass(fuse_fma, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        03 LOAD C0, ptr_c0 : f64[]
        ; Phase 2: backward
        04 ELEM T0, neg, S0 : f64[]
        05 FMA T1, T0, 1.0, C0 : f64[]
        06 FMA T2, S0, S1, 0.0 : f64[]
        07 FMA T3, 1.0, T2, C0 : f64[]
        08 FMA T4, S0, 2.0, 0.0 : f64[]
        09 FMA T5, 3.0, 1.0, T4 : f64[]
        10 FMA T6, S1, 2.0, 0.5 : f64[]
        11 FMA T7, 1.0, T6, 0.25 : f64[]
        12 FMA T8, S0, 2.0, 0.0 : f64[]
        13 FMA T9, T8, 3.0, C0 : f64[]
        14 FMA T10, S1, 4.0, 0.0 : f64[]
        15 ELEM T11, neg, T10 : f64[]
        16 FMA T12, S1, 4.0, 0.5 : f64[]
        17 ELEM T13, neg, T12 : f64[]
        18 FMA T14, S0, 2.0, 0.0 : f64[]
        19 FMA T15, S1, T14, 0.0 : f64[]  ; pulled
        20 FMA T16, S0, 0.5, 0.0 : f64[]
        21 ELEM T17, broadcast, T16, shape=(3,), bdims=() : f64[3]
        22 GRAD_INIT T18, 3.0 : f64[]
        23 FMA T19, S1, 2.0, 0.0 : f64[]
        24 FMA T20, T19, T18, 0.0 : f64[]
        25 GRAD_INIT T21, 0.0 : f64[]
        26 FMA T22, S0, 2.0, T21 : f64[]
        27 FMA T23, T22, C0, 0.0 : f64[]
        28 STORE ptr_a, T1 : f64[]
        29 STORE ptr_b, T3 : f64[]
        30 STORE ptr_c, T5 : f64[]
        31 STORE ptr_d, T7 : f64[]
        32 STORE ptr_e, T9 : f64[]
        33 STORE ptr_f, T11 : f64[]
        34 STORE ptr_g, T13 : f64[]
        35 STORE ptr_h, T15 : f64[]
        36 STORE ptr_i, T17 : f64[3]
        37 STORE ptr_j, T20 : f64[]
        38 STORE ptr_k, T23 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 LOAD      C0, ptr_c0                         : f64[]
        ; Phase 2: backward
        04 ELEM      T0, neg, S0                        : f64[]
        05 FMA       T1, S0, -1.0, C0                   : f64[]
        06 FMA       T2, S0, S1, 0.0                    : f64[]
        07 FMA       T3, S0, S1, C0                     : f64[]
        08 FMA       T4, S0, 2.0, 0.0                   : f64[]
        09 FMA       T5, S0, 2.0, 3.0                   : f64[]
        10 FMA       T6, S1, 2.0, 0.5                   : f64[]
        11 FMA       T7, S1, 2.0, 0.75                  : f64[]
        12 FMA       T8, S0, 2.0, 0.0                   : f64[]
        13 FMA       T9, S0, 6.0, C0                    : f64[]
        14 FMA       T10, S1, 4.0, 0.0                  : f64[]
        15 FMA       T11, S1, -4.0, 0.0                 : f64[]
        16 FMA       T12, S1, 4.0, 0.5                  : f64[]
        17 FMA       T13, S1, -4.0, -0.5                : f64[]
        18 FMA       T14, S0, S1, 0.0                   : f64[]
        19 FMA       T15, T14, 2.0, 0.0                 : f64[]  ; pulled
        20 ELEM      T16, broadcast, S0, shape=(3,), bdims=() : f64[3]
        21 FMA       T17, T16, 0.5, 0.0                 : f64[3]
        22 GRAD_INIT T18, 3.0                           : f64[]
        23 FMA       T19, S1, 2.0, 0.0                  : f64[]
        24 FMA       T20, T19, T18, 0.0                 : f64[]
        25 GRAD_INIT T21, 0.0                           : f64[]
        26 FMA       T22, S0, C0, 0.0                   : f64[]
        27 FMA       T23, T22, 2.0, 0.0                 : f64[]
        28 STORE     ptr_a, T1                          : f64[]
        29 STORE     ptr_b, T3                          : f64[]
        30 STORE     ptr_c, T5                          : f64[]
        31 STORE     ptr_d, T7                          : f64[]
        32 STORE     ptr_e, T9                          : f64[]
        33 STORE     ptr_f, T11                         : f64[]
        34 STORE     ptr_g, T13                         : f64[]
        35 STORE     ptr_h, T15                         : f64[]
        36 STORE     ptr_i, T17                         : f64[3]
        37 STORE     ptr_j, T20                         : f64[]
        38 STORE     ptr_k, T23                         : f64[]
    """)  # fmt: skip


def test_fuse_fma_folds_addends_in_the_program_dtype():
    """f32: the literal addends that fuse_add and fuse_scale fold are rounded as float32 arithmetic, not
    float64 (0.1 + 0.2 and 0.1 * 3 + 0.3 differ between the two)."""
    prog = verify(parse(_text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f32[]
        02 FMA       T0, S0, 2.0, 0.1                   : f32[]
        03 FMA       T1, 1.0, T0, 0.2                   : f32[]
        04 FMA       T2, S0, 2.0, 0.1                   : f32[]
        05 FMA       T3, T2, 3.0, 0.3                   : f32[]
        06 STORE     ptr_q, T1                          : f32[]
        07 STORE     ptr_p, T3                          : f32[]
    """)))  # fmt: skip
    f = np.float32
    add, scale = float(f(f(0.1) + f(0.2))), float(f(f(f(0.1) * f(3.0)) + f(0.3)))
    assert add != 0.1 + 0.2 and scale != 0.1 * 3.0 + 0.3
    fused = verify(fuse_fma(prog))
    assert fused.instrs[2].args == ("S0", 2.0, add)
    assert fused.instrs[4].args == ("S0", 6.0, scale)


def test_canonical_golden():
    # PASS -> a move; NEGATE read by one step -> the step's coefficient; a scaled / negated gradient read
    # only by a step -> the coefficient too; a NEGATE with another reader (the STORE) stays a sign flip.
    check_pass(canonical, """
        ; TP-IR  method=leapfrog
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]  ; q
        02 LOAD S1, ptr_p : f64[]  ; p
        ; Phase 2: backward | stage 1/3 kick(0.5)
        03 ELEM G0, sin, S0 : f64[]  ; dH/dq
        ; Phase 3: poisson | stage 1/3 kick(0.5)
        04 POISSON_J F0, G0, type=NEGATE : f64[]  ; pdot = -dH/dq
        ; Phase 4: integrate | stage 1/3 kick(0.5)
        05 SYMP_STEP S1, F0, 0.5*dt : f64[]  ; p += 0.5*dt*F0
        ; Phase 2: backward | stage 2/3 drift(1)
        06 FMA G1, S1, 2.0, 0.0 : f64[]  ; dH/dp
        ; Phase 3: poisson | stage 2/3 drift(1)
        07 POISSON_J F1, G1, type=PASS : f64[]  ; qdot = +dH/dp
        ; Phase 4: integrate | stage 2/3 drift(1)
        08 SYMP_STEP S0, F1, 1.0*dt : f64[]  ; q += 1*dt*F1
        ; Phase 2: backward | stage 3/3 kick(0.5)
        09 ELEM G2, sin, S0 : f64[]  ; dH/dq
        10 ELEM G3, neg, G2 : f64[]
        ; Phase 3: poisson | stage 3/3 kick(0.5)
        11 POISSON_J F2, G3, type=NEGATE : f64[]  ; pdot = -dH/dq
        12 POISSON_J F3, G0, type=NEGATE : f64[]
        ; Phase 4: integrate | stage 3/3 kick(0.5)
        13 SYMP_STEP S1, F2, 0.5*dt : f64[]  ; p += 0.5*dt*F2
        14 STORE ptr_q, S0 : f64[]
        15 STORE ptr_p, S1 : f64[]
        16 STORE ptr_f, F3 : f64[]
    """, """
        ; TP-IR  method=leapfrog
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]  ; q
        02 LOAD      S1, ptr_p                          : f64[]  ; p
        ; Phase 2: backward | stage 1/3 kick(0.5)
        03 ELEM      G0, sin, S0                        : f64[]  ; dH/dq
        ; Phase 3: poisson | stage 1/3 kick(0.5)
        04 POISSON_J F0, G0, type=NEGATE                : f64[]  ; pdot = -dH/dq
        ; Phase 4: integrate | stage 1/3 kick(0.5)
        05 SYMP_STEP S1, G0, -0.5*dt                    : f64[]  ; p += -0.5*dt*G0
        ; Phase 2: backward | stage 2/3 drift(1)
        06 FMA       G1, S1, 2.0, 0.0                   : f64[]  ; dH/dp
        ; Phase 4: integrate | stage 2/3 drift(1)
        07 SYMP_STEP S0, S1, 2.0*dt                     : f64[]  ; q += 2*dt*S1
        ; Phase 2: backward | stage 3/3 kick(0.5)
        08 ELEM      G2, sin, S0                        : f64[]  ; dH/dq
        09 ELEM      G3, neg, G2                        : f64[]
        ; Phase 3: poisson | stage 3/3 kick(0.5)
        10 POISSON_J F3, G0, type=NEGATE                : f64[]
        ; Phase 4: integrate | stage 3/3 kick(0.5)
        11 SYMP_STEP S1, G2, 0.5*dt                     : f64[]  ; p += 0.5*dt*G2
        12 STORE     ptr_q, S0                          : f64[]
        13 STORE     ptr_p, S1                          : f64[]
        14 STORE     ptr_f, F3                          : f64[]
    """)  # fmt: skip


@pytest.mark.parametrize("name", list(ZOO))
def test_canonical_flow_has_no_multiplication_by_minus_one(name):
    H, state = ZOO[name]
    step = compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical").step
    flow = [i for i in step.instrs if i.phase == "poisson" or i.op is Op.SYMP_STEP]
    assert not any(i.op is Op.POISSON_J for i in flow)
    assert not any(i.op is Op.FMA and -1.0 in i.args[:2] for i in flow)
    assert arithmetic_count(step, ("poisson",)) == dict.fromkeys(arithmetic_count(step), 0)
    assert any(i.attr("coef") < 0 for i in step.instrs if i.op is Op.SYMP_STEP)  # the sign lives here


def rigid_body_flow() -> Program:
    """H(L) = sum L_i^2 / (2 I_i) on so(3)*, one explicit Euler step, built from the IR constructors."""
    f3 = {"dtype": "f64", "shape": (3,)}
    return Program((
        Instr(Op.LOAD, ("S0",), ("ptr_L",), comment="L", **f3),
        Instr(Op.LOAD, ("C0",), ("ptr_c0",), comment="1/I", **f3),
        Instr(Op.FMA, ("G0",), ("S0", "C0", 0.0), phase="backward", comment="dH/dL = L/I", **f3),
        Instr(Op.POISSON_J, ("F0",), ("G0", "S0"), (("type", "LIE"),), phase="poisson", **f3),
        Instr(Op.SYMP_STEP, ("S0",), ("F0", "dt"), (("coef", 1.0),), phase="integrate", **f3),
        Instr(Op.STORE, ("ptr_L",), ("S0",), phase="integrate", **f3),
    ), (("structure", "so3"),))  # fmt: skip


def test_lie_cross_golden_and_cost():
    prog = verify(rigid_body_flow())
    out = verify(lie_cross(prog))
    assert to_text(out) == _text("""
        ; TP-IR  structure=so3
        ; Phase 1: forward
        01 LOAD      S0, ptr_L                          : f64[3]  ; L
        02 LOAD      C0, ptr_c0                         : f64[3]  ; 1/I
        ; Phase 2: backward
        03 FMA       G0, S0, C0, 0.0                    : f64[3]  ; dH/dL = L/I
        ; Phase 3: poisson
        04 LIE_CROSS F0, S0, G0                         : f64[3]
        ; Phase 4: integrate
        05 SYMP_STEP S0, F0, 1.0*dt                     : f64[3]
        06 STORE     ptr_L, S0                          : f64[3]
    """)
    before, after = arithmetic_count(prog, ("poisson",)), arithmetic_count(out, ("poisson",))
    assert (before["mul"], before["add"], before["sub"]) == (9, 6, 0)  # [L]x g as a 3x3 matrix product
    assert (after["mul"], after["add"], after["sub"]) == (6, 0, 3)  # L x g
    whole = arithmetic_count(out)
    assert whole["mul"] == 3 + 6 + 3 and whole["add"] == 3 and whole["sub"] == 3  # FMA, cross, step
    inputs = {"ptr_L": jnp.array([1.0, 0.1, 0.5]), "ptr_c0": 1 / jnp.array([1.0, 2.0, 3.0])}
    got, want = reference.run(out, inputs, 0.01), reference.run(prog, inputs, 0.01)
    np.testing.assert_allclose(got["ptr_L"], want["ptr_L"], rtol=1e-15)
    assert to_text(PIPELINE_PROGRAM(prog)).count("LIE_CROSS") == 1


def PIPELINE_PROGRAM(prog):
    return passes.optimize(prog, PIPELINE, check=True)


def test_arithmetic_count_rules():
    prog = parse(
        _text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[2]
        02 FMA       T0, S0, 3.0, 1.0                   : f64[2]
        03 FMA       T1, T0, -1.0, S0                   : f64[2]
        04 FMA       T2, T1, 1.0, 0.0                   : f64[2]
        05 FMA       T3, T2, -1.0, 0.0                  : f64[2]
        06 SUM       T4, T3, axis=(0,)                  : f64[]
        07 ELEM      T5, sin, T4                        : f64[]
        08 STORE     ptr_q, T5                          : f64[]
    """)
    )
    assert arithmetic_count(prog) == {
        "mul": 2,
        "add": 3,
        "sub": 2,
        "neg": 2,
        "div": 0,
        "func": 1,
        "opaque": 0,
    }


def _run_step(comp, q, p, dt):
    inputs = {"ptr_q": q, "ptr_p": p} | {f"ptr_c{k}": c for k, c in enumerate(comp.consts)}
    if comp.prologue is not None:
        inputs["ptr_force"] = reference.run(comp.prologue, inputs)["ptr_force"]
    return reference.run(comp.step, inputs, dt), inputs


@pytest.mark.parametrize("method", ["leapfrog", "symplectic_euler", "yoshida4"])
@pytest.mark.parametrize("name", list(ZOO))
def test_pipeline_preserves_semantics_on_the_zoo(name, method):
    H, state = ZOO[name]
    q, p = state()
    comp = compile_hamiltonian(H, (q, p), METHODS[method], "canonical")  # verify() after every pass
    base = compile_hamiltonian(H, (q, p), METHODS[method], "canonical", pipeline=BASELINE)
    got, inputs = _run_step(comp, q, p, 0.05)
    want = reference.run(comp.source, inputs, 0.05)
    for ptr in ("ptr_q", "ptr_p"):
        np.testing.assert_allclose(got[ptr], want[ptr], rtol=1e-14, atol=1e-14)
    if "ptr_force" in got:  # the carried force is dH/dq at the new state
        again = reference.run(comp.prologue, inputs | {"ptr_q": got["ptr_q"], "ptr_p": got["ptr_p"]})
        np.testing.assert_allclose(got["ptr_force"], again["ptr_force"], rtol=1e-14, atol=1e-14)
    assert len(comp.step) < len(base.step)


def test_every_pass_verifies_and_round_trips():
    H, state = ZOO["kepler"]
    prog = compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical", pipeline=()).step
    for name, fn in PIPELINE:
        prog = verify(fn(prog))
        assert parse(to_text(prog), opaque=prog.opaque) == prog, name


HARMONIC_LEAPFROG = """
    ; TP-IR  H=harmonic  method=leapfrog  structure=canonical  fsal=1  carry=ptr_force:prologue
    ; Phase 1: forward
    01 LOAD      S0, ptr_q                          : f64[2]  ; q
    02 LOAD      S1, ptr_p                          : f64[2]  ; p
    ; Phase 2: backward | stage 1/3 kick(0.5)
    03 LOAD      G3, ptr_force                      : f64[2]  ; force carried from the last kick (FSAL)
    ; Phase 4: integrate | stage 1/3 kick(0.5)
    04 SYMP_STEP S1, G3, -0.5*dt                    : f64[2]  ; p += -0.5*dt*G3
    ; Phase 4: integrate | stage 2/3 drift(1)
    05 SYMP_STEP S0, S1, 1.0*dt                     : f64[2]  ; q += 1*dt*S1
    ; Phase 4: integrate | stage 3/3 kick(0.5)
    06 SYMP_STEP S1, S0, -0.5*dt                    : f64[2]  ; p += -0.5*dt*S0
    ; Phase 4: integrate
    07 STORE     ptr_q, S0                          : f64[2]
    08 STORE     ptr_p, S1                          : f64[2]
    09 STORE     ptr_force, S0                      : f64[2]  ; force for the next step's first kick
"""


def test_harmonic_leapfrog_listing():
    """The optimised leapfrog of H = (p^2 + q^2)/2: one carried force, three steps, no arithmetic left."""
    H, state = ZOO["harmonic"]
    comp = compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical")
    assert to_text(comp.step) == _text(HARMONIC_LEAPFROG)
    base = compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical", pipeline=BASELINE)
    assert (len(comp.source), len(base.step), len(comp.step)) == (54, 23, 9)


def test_cse_never_merges_impure_ops():
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_q                          : f64[]
        ; Phase 4: integrate
        03 SYMP_STEP S0, S1, 1.0*dt                     : f64[]
        04 SYMP_STEP S1, S1, 1.0*dt                     : f64[]
        05 STORE     ptr_q, S0                          : f64[]
        06 STORE     ptr_p, S1                          : f64[]
    """
    check_pass(cse, text, text)


def _harmonic(pipeline=PIPELINE):
    H, state = ZOO["harmonic"]
    return compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical", pipeline=pipeline)


def test_debug_prints_one_line_per_pass(monkeypatch, capsys):
    monkeypatch.setenv("TPJAX_DEBUG", "1")
    monkeypatch.delenv("TPJAX_DUMP_DIR", raising=False)
    _harmonic()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[tpjax] pass")]
    assert [ln.split()[2] for ln in lines] == [name for name, _ in PIPELINE]
    assert lines[-1].endswith("->    9 instructions")


def test_dump_dir_and_generated_code_hook(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TPJAX_DEBUG", "3")
    monkeypatch.setenv("TPJAX_DUMP_DIR", str(tmp_path))
    seen = []

    def fake_codegen(prog):
        seen.append(prog)
        return f"// kernel with {len(prog)} instructions"

    monkeypatch.setattr(passes, "GENERATED_CODE_HOOKS", [fake_codegen])
    comp = _harmonic()
    n = len(PIPELINE)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{k:02d}_{name}.tpir" for k, (name, _) in enumerate(PIPELINE, 1)] + [f"{n + 1:02d}_codegen.txt"]
    assert (tmp_path / f"{n:02d}_dce.tpir").read_text() == to_text(comp.step) + "\n"
    assert (tmp_path / f"{n + 1:02d}_codegen.txt").read_text() == "// kernel with 9 instructions\n"
    assert seen == [comp.step]
    err = capsys.readouterr().err
    assert "// kernel with 9 instructions" in err and "SYMP_STEP" in err  # level 2 listings, level 3 code


def test_arithmetic_count_every_op():
    """Each op counted by the rules of ``arithmetic_count``'s docstring, per result element (LIE ops per
    3-vector), on a batch: the expected counts are written next to each instruction."""
    f64 = lambda *shape: {"dtype": "f64", "shape": shape}  # noqa: E731
    eig = (("func", "eigh"), ("key", 0), ("types", ("f64[3x3]", "f64[3]")))
    bcast = (("func", "broadcast"), ("shape", (2, 3)), ("bdims", (1,)))
    rows = [  # (instruction, its counts)
        (Instr(Op.LOAD, ("S0",), ("ptr_L",), **f64(4, 3)), {}),
        (Instr(Op.LOAD, ("S1",), ("ptr_g",), **f64(4, 3)), {}),
        (Instr(Op.LOAD, ("C0",), ("ptr_J",), **f64(2, 3, 3)), {}),
        (Instr(Op.LOAD, ("S2",), ("ptr_x",), **f64(2, 3)), {}),
        # 4 systems: L x g = 6 mul + 3 sub each; [L]x g as a matrix product = 9 mul + 6 add each
        (Instr(Op.LIE_CROSS, ("F0",), ("S0", "S1"), **f64(4, 3)), {"mul": 4 * 6, "sub": 4 * 3}),
        (Instr(Op.POISSON_J, ("F1",), ("S1", "S0"), (("type", "LIE"),), **f64(4, 3)), {"mul": 4 * 9, "add": 4 * 6}),
        # J g with J (2, 3, 3): each of the 6 result elements is a 3-term dot product
        (Instr(Op.POISSON_J, ("F2",), ("S2", "C0"), (("type", "MATRIX"),), **f64(2, 3)), {"mul": 6 * 3, "add": 6 * 2}),
        (Instr(Op.LOAD, ("C1",), ("ptr_K",), **f64(2, 2, 3, 3)), {}),
        (Instr(Op.LOAD, ("S3",), ("ptr_y",), **f64(2, 2, 3)), {}),
        (Instr(Op.POISSON_J, ("F5",), ("S3", "C1"), (("type", "MATRIX"),), **f64(2, 2, 3)), {"mul": 36, "add": 24}),
        (Instr(Op.LOAD, ("C2",), ("ptr_k",), **f64()), {}),
        (Instr(Op.POISSON_J, ("F6",), ("C2", "C2"), (("type", "MATRIX"),), **f64()), {"mul": 1}),  # a 1x1 J
        (Instr(Op.POISSON_J, ("F3",), ("S2",), (("type", "NEGATE"),), **f64(2, 3)), {"neg": 6}),
        (Instr(Op.POISSON_J, ("F4",), ("S2",), (("type", "PASS"),), **f64(2, 3)), {}),
        (Instr(Op.ACC_GRAD, ("T0",), ("S2", "F3"), **f64(2, 3)), {"add": 6}),
        (Instr(Op.FMA, ("T1",), ("S2", 1.0, "F4"), **f64(2, 3)), {"add": 6}),  # x*1 + y: no multiply
        (Instr(Op.SUM, ("T2",), ("T1",), (("axis", (0,)),), **f64(3)), {"add": 6 - 3}),
        (Instr(Op.SUM, ("T3",), ("T2",), (("axis", ()),), **f64(3)), {}),  # nothing summed
        (Instr(Op.ELEM, ("T4",), ("T2",), (("func", "ipow"), ("n", 5)), **f64(3)), {"mul": 3 * 3}),  # x2, x4, x5
        (Instr(Op.ELEM, ("T12",), ("T2",), (("func", "ipow"), ("n", 1)), **f64(3)), {}),  # x^1: no multiply
        (Instr(Op.ELEM, ("T5",), ("T2",), (("func", "sq"),), **f64(3)), {"mul": 3}),
        (Instr(Op.ELEM, ("T6",), ("T2",), (("func", "recip"),), **f64(3)), {"div": 3}),
        (Instr(Op.ELEM, ("T7",), ("T2",), (("func", "sin"),), **f64(3)), {"func": 3}),
        (Instr(Op.ELEM, ("T8",), ("T3",), bcast, **f64(2, 3)), {}),
        (Instr(Op.OPAQUE, ("T9", "T10"), ("C0",), eig, **f64(3, 3)), {"opaque": 9}),
        (Instr(Op.SUM, ("T11",), ("T10",), (("axis", (0,)),), **f64()), {"add": 3 - 1}),  # the second result: (3,)
        (Instr(Op.STORE, ("ptr_out",), ("T11",), **f64()), {}),
    ]
    prog = Program(tuple(i for i, _ in rows), opaque=(jnp.linalg.eigh,))
    verify(prog)
    want = dict.fromkeys(("mul", "add", "sub", "neg", "div", "func", "opaque"), 0)
    for _, counts in rows:
        for k, v in counts.items():
            want[k] += v
    assert arithmetic_count(prog) == want
    # one row at a time (a prefix of the program), so a wrong count cannot hide behind another
    for n, (_, counts) in enumerate(rows, 1):
        before = arithmetic_count(prog.with_instrs(prog.instrs[: n - 1]))
        after = arithmetic_count(prog.with_instrs(prog.instrs[:n]))
        assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == counts, rows[n - 1][0]


def test_carry_declarations_round_trip_and_are_checked():
    prog = rigid_body_flow()
    out = passes.carry.declare(passes.carry.declare(prog, "ptr_force", "prologue"), "ptr_L_comp", "zeros", "ptr_L")
    assert passes.carry.carried(out) == (
        passes.carry.Carried("ptr_force", "prologue"),
        passes.carry.Carried("ptr_L_comp", "zeros", "ptr_L"),
    )
    assert parse(to_text(out)) == out and passes.carry.carried(parse(to_text(out))) == passes.carry.carried(out)
    assert out.instrs == prog.instrs and passes.carry.carried(prog) == ()
    for init, like in (("ones", None), ("zeros", None), ("prologue", "ptr_L")):
        with pytest.raises(ValueError, match="carried register ptr_x: init must be"):
            passes.carry.declare(prog, "ptr_x", init, like)


def test_fsal_with_opaque_forces():
    """The opening and closing kicks' OPAQUE ops differ only in their callable's key: FSAL still applies (one
    force per step), and the step computes what the unoptimised program computes."""
    W = jnp.arange(9.0).reshape(3, 3) / 10

    def H(q, p):
        return 0.5 * p @ p + jnp.sum(jnp.tanh(W @ q))

    q, p = jnp.array([0.3, -0.2, 0.5]), jnp.array([0.1, 0.4, -0.3])
    comp = compile_hamiltonian(H, (q, p), METHODS["leapfrog"], "canonical")
    assert dict(comp.step.meta).get("fsal") == "1" and comp.prologue is not None
    base = compile_hamiltonian(H, (q, p), METHODS["leapfrog"], "canonical", pipeline=())
    assert 0 < comp.step.count(Op.OPAQUE) < base.step.count(Op.OPAQUE)
    got, inputs = _run_step(comp, q, p, 0.05)
    want = reference.run(comp.source, inputs, 0.05)
    for ptr in ("ptr_q", "ptr_p"):
        np.testing.assert_allclose(got[ptr], want[ptr], rtol=1e-14, atol=1e-14)


def test_fsal_needs_the_same_closing_force():
    """A closing kick whose force differs from the opening one (cos, not sin) is not FSAL."""
    prog = parse(
        _text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        ; Phase 2: backward | stage 1/3 kick(0.5)
        03 ELEM      G0, sin, S0                        : f64[]
        ; Phase 3: poisson | stage 1/3 kick(0.5)
        04 POISSON_J F0, G0, type=NEGATE                : f64[]
        ; Phase 4: integrate | stage 1/3 kick(0.5)
        05 SYMP_STEP S1, F0, 0.5*dt                     : f64[]
        ; Phase 4: integrate | stage 2/3 drift(1)
        06 SYMP_STEP S0, S1, 1.0*dt                     : f64[]
        ; Phase 2: backward | stage 3/3 kick(0.5)
        07 ELEM      G1, cos, S0                        : f64[]
        ; Phase 3: poisson | stage 3/3 kick(0.5)
        08 POISSON_J F1, G1, type=NEGATE                : f64[]
        ; Phase 4: integrate | stage 3/3 kick(0.5)
        09 SYMP_STEP S1, F1, 0.5*dt                     : f64[]
        10 STORE     ptr_q, S0                          : f64[]
        11 STORE     ptr_p, S1                          : f64[]
    """)
    )
    assert fsal(prog) is prog and fsal_prologue(prog) is None
    same = parse(to_text(prog).replace("G1, cos, S0", "G1, sin, S0"))
    assert dict(fsal(same).meta).get("fsal") == "1"


def test_generated_code_hooks_are_named_numbered_and_dumped(monkeypatch, capsys, tmp_path):
    """TPJAX_DEBUG=3 with two hooks, one without a __name__; the dump directory does not exist yet."""
    dump = tmp_path / "not" / "yet"
    monkeypatch.setenv("TPJAX_DEBUG", "3")
    monkeypatch.setenv("TPJAX_DUMP_DIR", str(dump))

    def named(prog):
        return f"named: {len(prog)} instructions"

    unnamed = functools.partial(lambda prog, tag: f"{tag}: {len(prog)}", tag="unnamed")
    monkeypatch.setattr(passes, "GENERATED_CODE_HOOKS", [named, unnamed])
    prog = _harmonic(pipeline=()).step
    assert sorted(p.name for p in dump.iterdir()) == ["01_codegen.txt", "02_codegen.txt"]  # after 0 passes
    assert (dump / "01_codegen.txt").read_text() == f"named: {len(prog)} instructions\n"
    assert (dump / "02_codegen.txt").read_text() == f"unnamed: {len(prog)}\n"
    err = capsys.readouterr().err
    assert f"[tpjax] generated code (named):\nnamed: {len(prog)} instructions" in err
    assert f"[tpjax] generated code (hook):\nunnamed: {len(prog)}" in err


def test_canonical_folds_only_scalings_into_the_step():
    # a negation read only by a step -> the coefficient's sign; 3*x read only by a step -> 1.5*dt; cos x, 2x + c
    # and x*c (a register) are no scalings and stay; 3*S1 with S1 updated in place before the step stays too
    check_pass(canonical, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        03 LOAD C0, ptr_c0 : f64[]
        ; Phase 2: backward
        04 ELEM G0, sin, S0 : f64[]
        05 ELEM G1, neg, G0 : f64[]
        ; Phase 4: integrate
        06 SYMP_STEP S1, G1, 0.5*dt : f64[]
        ; Phase 2: backward
        07 ELEM G2, cos, S1 : f64[]
        ; Phase 4: integrate
        08 SYMP_STEP S0, G2, 1.0*dt : f64[]
        ; Phase 2: backward
        09 FMA G3, S0, 2.0, C0 : f64[]
        10 FMA G4, S0, C0, 0.0 : f64[]
        11 FMA G5, S1, 3.0, 0.0 : f64[]
        ; Phase 4: integrate
        12 SYMP_STEP S1, G3, 0.5*dt : f64[]
        13 SYMP_STEP S1, G4, 0.5*dt : f64[]
        14 SYMP_STEP S0, G5, 0.5*dt : f64[]
        ; Phase 2: backward
        15 FMA G6, S1, 3.0, 0.0 : f64[]
        ; Phase 4: integrate
        16 SYMP_STEP S0, G6, 0.5*dt : f64[]
        17 STORE ptr_q, S0 : f64[]
        18 STORE ptr_p, S1 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 LOAD      C0, ptr_c0                         : f64[]
        ; Phase 2: backward
        04 ELEM      G0, sin, S0                        : f64[]
        05 ELEM      G1, neg, G0                        : f64[]
        ; Phase 4: integrate
        06 SYMP_STEP S1, G0, -0.5*dt                    : f64[]
        ; Phase 2: backward
        07 ELEM      G2, cos, S1                        : f64[]
        ; Phase 4: integrate
        08 SYMP_STEP S0, G2, 1.0*dt                     : f64[]
        ; Phase 2: backward
        09 FMA       G3, S0, 2.0, C0                    : f64[]
        10 FMA       G4, S0, C0, 0.0                    : f64[]
        11 FMA       G5, S1, 3.0, 0.0                   : f64[]
        ; Phase 4: integrate
        12 SYMP_STEP S1, G3, 0.5*dt                     : f64[]
        13 SYMP_STEP S1, G4, 0.5*dt                     : f64[]
        14 SYMP_STEP S0, G5, 0.5*dt                     : f64[]
        ; Phase 2: backward
        15 FMA       G6, S1, 3.0, 0.0                   : f64[]
        ; Phase 4: integrate
        16 SYMP_STEP S0, S1, 1.5*dt                     : f64[]
        17 STORE     ptr_q, S0                          : f64[]
        18 STORE     ptr_p, S1                          : f64[]
    """)  # fmt: skip


# ---- random programs: every pass, and the pipeline pass by pass, computes what its input computes ----------


def _np_run(prog: Program, inputs: dict, dt: float) -> dict:
    """An independent numpy interpreter of the ops the random programs use (float64)."""
    env, out = {}, {}
    for i in prog.instrs:
        if i.op is Op.LOAD:
            env[i.dst[0]] = np.asarray(inputs[i.args[0]], np.float64)
            continue
        if i.op is Op.STORE:
            out[i.dst[0]] = env[i.args[0]]
            continue
        v = [a if a == "dt" else (np.float64(a) if not isinstance(a, str) else env[a]) for a in i.args]
        if i.op is Op.FMA:
            env[i.dst[0]] = np.broadcast_to(v[0] * v[1] + v[2], i.shape)
        elif i.op is Op.ACC_GRAD:
            env[i.dst[0]] = np.broadcast_to(v[0] + v[1], i.shape)
        elif i.op is Op.GRAD_INIT:
            env[i.dst[0]] = np.full(i.shape, float(i.args[0]))
        elif i.op is Op.SUM:
            env[i.dst[0]] = np.sum(v[0], axis=i.attr("axis"))
        elif i.op is Op.POISSON_J:
            env[i.dst[0]] = {"PASS": 1.0, "NEGATE": -1.0}[i.attr("type")] * v[0]
        elif i.op is Op.SYMP_STEP:
            env[i.dst[0]] = env[i.dst[0]] + i.attr("coef") * dt * v[0]
        else:  # ELEM
            f = i.attr("func")
            fns = {"neg": np.negative, "sin": np.sin, "cos": np.cos, "sq": np.square, "recip": np.reciprocal}
            env[i.dst[0]] = np.broadcast_to(v[0], i.shape) if f in ("broadcast", "reshape", "convert") else fns[f](v[0])
    return out


def _random_program(seed: int, n: int = 24) -> Program:
    """Chains of FMA / ACC_GRAD / neg / broadcast / constants with literal 0, +-1 and scalings, in-place
    SYMP_STEPs in between (non-SSA): the patterns the rules match, and the traps (a redefined operand)."""
    rng = np.random.default_rng(seed)
    f = lambda shape: {"dtype": "f64", "shape": shape}  # noqa: E731
    shapes = {"S0": (3,), "S1": (3,), "C0": (3,), "C1": ()}
    ptrs = {"S0": "ptr_q", "S1": "ptr_p", "C0": "ptr_c0", "C1": "ptr_c1"}
    instrs = [Instr(Op.LOAD, (r,), (ptrs[r],), **f(s)) for r, s in shapes.items()]
    lits = (0.0, 1.0, -1.0, 0.5, 2.0, 3.0, -2.0)

    def reg(shape=None):
        names = [r for r, s in shapes.items() if shape is None or s == shape]
        return names[-1] if rng.random() < 0.5 else names[rng.integers(len(names))]

    def operand():
        return float(rng.choice(lits)) if rng.random() < 0.35 else reg()

    def shape_of(*xs):
        return tuple(np.broadcast_shapes(*(shapes[x] if isinstance(x, str) else () for x in xs)))

    kinds = ("fma", "fma", "fma", "acc", "neg", "sin", "bcast", "init", "step", "sum", "pj")
    for t in range(n):
        kind, dst = kinds[rng.integers(len(kinds))], f"T{t}"
        if kind == "fma":
            a, b, c = operand(), operand(), operand()
            i = Instr(Op.FMA, (dst,), (a, b, c), phase="backward", **f(shape_of(a, b, c)))
        elif kind == "acc":
            a, b = reg(), operand()
            i = Instr(Op.ACC_GRAD, (dst,), (a, b), phase="backward", **f(shape_of(a, b)))
        elif kind in ("neg", "sin"):
            a = reg()
            i = Instr(Op.ELEM, (dst,), (a,), (("func", kind),), phase="backward", **f(shapes[a]))
        elif kind == "bcast":
            i = Instr(Op.ELEM, (dst,), (reg(()),), (("func", "broadcast"), ("shape", (3,)), ("bdims", ())),
                      phase="backward", **f((3,)))  # fmt: skip
        elif kind == "init":
            i = Instr(Op.GRAD_INIT, (dst,), (float(rng.choice(lits)),), phase="backward", **f(((), (3,))[t % 2]))
        elif kind == "sum":
            i = Instr(Op.SUM, (dst,), (reg((3,)),), (("axis", (0,)),), phase="backward", **f(()))
        elif kind == "pj":
            ty = ("PASS", "NEGATE")[rng.integers(2)]
            i = Instr(Op.POISSON_J, (dst,), (reg((3,)),), (("type", ty),), phase="poisson", **f((3,)))
        else:
            s, x = ("S0", "S1")[rng.integers(2)], reg((3,))
            coef = float(rng.choice((0.5, 1.0, -0.5, 2.0)))
            instrs.append(Instr(Op.SYMP_STEP, (s,), (x, "dt"), (("coef", coef),), phase="integrate", **f((3,))))
            continue
        instrs.append(i)
        shapes[dst] = i.shape
    outs = ["S0", "S1"] + [r for r in list(shapes)[4:] if rng.random() < 0.15]
    for k, r in enumerate(outs):
        instrs.append(Instr(Op.STORE, (f"ptr_o{k}",), (r,), phase="integrate", **f(shapes[r])))
    return verify(Program(tuple(instrs)))


@pytest.mark.parametrize("seed", range(0, 400, 50))
def test_passes_preserve_semantics_on_random_programs(seed):
    rng = np.random.default_rng(seed)
    inputs = {"ptr_q": rng.uniform(0.5, 1.5, 3), "ptr_p": rng.uniform(0.5, 1.5, 3),
              "ptr_c0": rng.uniform(0.5, 1.5, 3), "ptr_c1": rng.uniform(0.5, 1.5)}  # fmt: skip
    for s in range(seed, seed + 50):
        prog = _random_program(s)
        want = _np_run(prog, inputs, 0.1)
        stages = [(name, fn) for name, fn in PIPELINE]  # each pass alone, then the pipeline pass by pass
        runs = [[(name, fn)] for name, fn in stages] + [stages]
        for run in runs:
            out = prog
            for name, fn in run:
                out = verify(fn(out))
                got = _np_run(out, inputs, 0.1)
                assert got.keys() == want.keys()
                for ptr in want:
                    np.testing.assert_allclose(got[ptr], want[ptr], rtol=1e-12, atol=1e-12, err_msg=f"{s} {name}")


def test_fsal_prologue_listing():
    H, state = ZOO["harmonic"]
    comp = compile_hamiltonian(H, state(), METHODS["leapfrog"], "canonical")
    assert to_text(verify(comp.prologue)) == _text("""
        ; TP-IR  H=harmonic  method=leapfrog  structure=canonical  program=fsal_prologue
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[2]  ; q
        ; Phase 4: integrate
        02 STORE     ptr_force, S0                      : f64[2]  ; initial force
    """)
    assert parse(to_text(comp.prologue)) == comp.prologue


@pytest.mark.parametrize("method", ["leapfrog", "symplectic_euler", "position_verlet", "yoshida4"])
@pytest.mark.parametrize("name", ["harmonic", "pendulum"])
def test_fsal_carried_force_over_several_steps(name, method):
    """Three steps with the force carried from step to step (started by the prologue) equal three steps of the
    unoptimised program; H = (p^2 + q^2)/2 has dH/dq and dH/dp of one form, so a drift could pass for a kick."""
    H, state = ZOO[name]
    q, p = state()
    comp = compile_hamiltonian(H, (q, p), METHODS[method], "canonical")
    fsal_on = ("fsal", "1") in comp.step.meta
    assert (comp.prologue is not None) == METHODS[method].fsal == fsal_on
    _, inputs = _run_step(comp, q, p, 0.05)
    want = dict(inputs)
    for _ in range(3):
        got = reference.run(comp.step, inputs, 0.05)
        inputs = inputs | got
        want = want | reference.run(comp.source, want, 0.05)
    for ptr in ("ptr_q", "ptr_p"):
        np.testing.assert_allclose(inputs[ptr], want[ptr], rtol=1e-13, atol=1e-14)
    assert fsal(comp.step) is comp.step  # a step that carries its force already is left alone
    assert fsal(fsal(comp.source)) == fsal(comp.source)


def test_fsal_keeps_the_force_type_of_a_multi_result_op():
    """The force is the second result of an OPAQUE op (f64[2], the op's first result is f64[]); a constant
    LOADed first is f32. The carried force is LOADed and STOREd as f64[2], and the program computes the same."""
    grad = lambda q: (jnp.sum(q), jnp.sin(q))  # noqa: E731
    text = _text("""
        ; Phase 1: forward
        01 LOAD      C0, ptr_c0                         : f32[]
        02 LOAD      S0, ptr_q                          : f64[2]
        03 LOAD      S1, ptr_p                          : f64[2]
        ; Phase 2: backward | stage 1/3 kick(0.5)
        04 OPAQUE    (T0, G0), grad#0, S0, types=(f64[],f64[2]) : f64[]
        ; Phase 3: poisson | stage 1/3 kick(0.5)
        05 POISSON_J F0, G0, type=NEGATE                : f64[2]
        ; Phase 4: integrate | stage 1/3 kick(0.5)
        06 SYMP_STEP S1, F0, 0.5*dt                     : f64[2]
        ; Phase 4: integrate | stage 2/3 drift(1)
        07 SYMP_STEP S0, S1, 1.0*dt                     : f64[2]
        ; Phase 2: backward | stage 3/3 kick(0.5)
        08 OPAQUE    (T1, G1), grad#1, S0, types=(f64[],f64[2]) : f64[]
        ; Phase 3: poisson | stage 3/3 kick(0.5)
        09 POISSON_J F1, G1, type=NEGATE                : f64[2]
        ; Phase 4: integrate | stage 3/3 kick(0.5)
        10 SYMP_STEP S1, F1, 0.5*dt                     : f64[2]
        11 STORE     ptr_q, S0                          : f64[2]
        12 STORE     ptr_p, S1                          : f64[2]
    """)
    prog = verify(parse(text, opaque=(grad, grad)))
    out, pro = verify(fsal(prog)), verify(fsal_prologue(prog))
    load = next(i for i in out.instrs if i.op is Op.LOAD and i.args == ("ptr_force",))
    store = next(i for i in out.instrs if i.op is Op.STORE and i.dst == ("ptr_force",))
    assert (load.dtype, load.shape, store.dtype, store.shape) == ("f64", (2,), "f64", (2,))
    assert [i.op for i in pro.instrs] == [Op.LOAD, Op.LOAD, Op.LOAD, Op.OPAQUE, Op.STORE]
    assert (pro.instrs[-1].dtype, pro.instrs[-1].shape) == ("f64", (2,))
    inputs = {"ptr_c0": jnp.float32(1.0), "ptr_q": jnp.array([0.3, -0.4]), "ptr_p": jnp.array([0.2, 0.1])}
    inputs["ptr_force"] = reference.run(pro, inputs)["ptr_force"]
    got, want = reference.run(out, inputs, 0.1), reference.run(prog, inputs, 0.1)
    for ptr in ("ptr_q", "ptr_p"):
        np.testing.assert_allclose(got[ptr], want[ptr], rtol=1e-15)
    np.testing.assert_allclose(got["ptr_force"], jnp.sin(got["ptr_q"]), rtol=1e-15)
    best = verify(passes.optimize(prog))  # the whole pipeline, canonical's step scaling of an OPAQUE result too
    np.testing.assert_allclose(reference.run(best, inputs, 0.1)["ptr_p"], want["ptr_p"], rtol=1e-15)


def test_dce_keeps_effects_and_drops_overwritten_definitions():
    shout = lambda x: jax.debug.print("{}", x)  # noqa: E731
    text = _text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 ELEM      T0, sin, S0                        : f64[]
        03 OPAQUE    (), debug_print#0, T0, effect=True : f64[]
        04 ELEM      T1, cos, S0                        : f64[]
        05 ELEM      T1, sin, S0                        : f64[]
        06 STORE     ptr_q, T1                          : f64[]
    """)
    out = verify(dce(verify(parse(text, opaque=(shout,)))))
    assert [(i.op, i.attr("func")) for i in out.instrs] == [
        (Op.LOAD, None), (Op.ELEM, "sin"), (Op.OPAQUE, "debug_print"), (Op.ELEM, "sin"), (Op.STORE, None)
    ]  # fmt: skip


def test_canonical_leaves_a_lie_bracket_of_a_negation():
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_L                          : f64[3]
        ; Phase 2: backward
        02 ELEM      G0, neg, S0                        : f64[3]
        ; Phase 3: poisson
        03 POISSON_J F0, G0, S0, type=LIE               : f64[3]
        ; Phase 4: integrate
        04 SYMP_STEP S0, F0, 1.0*dt                     : f64[3]
        05 STORE     ptr_L, S0                          : f64[3]
    """
    check_pass(canonical, text, text)


def test_constants_fold_in_the_program_dtype():
    """f32: 0.1 * 0.1 folds to float32(0.1) * float32(0.1) rounded to float32 (as the kernel multiplies), and a
    constant result is the float32 value of its literal."""
    prog = verify(parse(_text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f32[]
        02 FMA       T0, S0, 0.1, 0.0                   : f32[]
        03 FMA       T1, T0, 0.1, 0.0                   : f32[]
        04 FMA       T2, S0, 0.0, 0.1                   : f32[]
        05 FMA       T3, 0.1, 0.1, 0.0                  : f32[]
        06 STORE     ptr_q, T1                          : f32[]
        07 STORE     ptr_p, T2                          : f32[]
        08 STORE     ptr_c, T3                          : f32[]
    """)))  # fmt: skip
    k = float(np.float32(0.1) * np.float32(0.1))
    fused, simple = verify(fuse_fma(prog)), verify(simplify(prog))
    assert fused.instrs[2].args == ("S0", k, 0.0)
    assert simple.instrs[3].op is Op.GRAD_INIT and simple.instrs[3].args == (float(np.float32(0.1)),)
    assert simple.instrs[4].op is Op.GRAD_INIT and simple.instrs[4].args == (k,)  # not float32(0.1 * 0.1)
    x = jnp.float32(0.7)
    np.testing.assert_array_equal(reference.run(fused, {"ptr_q": x})["ptr_q"], x * jnp.float32(k))


def test_optimize_verifies_under_pytest_and_reports_by_level(monkeypatch, capsys, tmp_path):
    prog = _harmonic(pipeline=()).step
    broken = lambda p: p.with_instrs(p.instrs[1:])  # noqa: E731  (drops a LOAD: reads before any definition)
    for env in ("", "0"):
        monkeypatch.setenv("TPJAX_DEBUG", env)
        monkeypatch.delenv("TPJAX_DUMP_DIR", raising=False)
        with pytest.raises(VerifyError, match="before any instruction defines it"):
            passes.optimize(prog, (("broken", broken),))  # check=None: on under pytest
        assert len(passes.optimize(prog, (("broken", broken),), check=False)) == len(prog) - 1
        assert capsys.readouterr().err == ""  # TPJAX_DEBUG unset, empty or 0: quiet
    monkeypatch.setenv("TPJAX_DEBUG", "2")
    monkeypatch.setenv("TPJAX_DUMP_DIR", str(tmp_path / "new" / "dir"))
    monkeypatch.setattr(passes, "GENERATED_CODE_HOOKS", [lambda p: "never at level 2"])
    out = passes.optimize(prog, (("dce", dce),))
    err = capsys.readouterr().err
    assert f"[tpjax] pass dce        {len(prog):4d} -> {len(out):4d} instructions" in err
    assert to_text(out) in err and "never at level 2" not in err
    assert (tmp_path / "new" / "dir" / "01_dce.tpir").read_text() == to_text(out) + "\n"


def test_cse_keeps_operand_order_of_non_commutative_ops():
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[3]
        02 LOAD      S1, ptr_p                          : f64[3]
        03 LIE_CROSS F0, S0, S1                         : f64[3]
        04 LIE_CROSS F1, S1, S0                         : f64[3]
        05 ELEM      T0, div, S0, S1                    : f64[3]
        06 ELEM      T1, div, S1, S0                    : f64[3]
        07 ACC_GRAD  T2, F0, F1                         : f64[3]
        08 ACC_GRAD  T3, T0, T1                         : f64[3]
        09 STORE     ptr_q, T2                          : f64[3]
        10 STORE     ptr_p, T3                          : f64[3]
    """
    check_pass(cse, text, text)


def test_no_rename_into_a_register_updated_in_place():
    # T0 = S0 (a copy), but T0 is then stepped in place: its readers cannot read S0 instead
    text = """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 FMA       T0, S0, 1.0, 0.0                   : f64[]
        ; Phase 4: integrate
        04 SYMP_STEP T0, S1, 1.0*dt                     : f64[]
        05 STORE     ptr_q, T0                          : f64[]
        06 STORE     ptr_p, S0                          : f64[]
    """
    check_pass(simplify, text, text)


def test_simplify_folds_orders_and_drops_identities():
    # 2 + 0.5 and 0.5^3 folded; 1*x + 0 and 0*x + c are copies; the literal factor goes second; SUM over no
    # axis is a copy; sin and broadcast of a constant fold; constant registers become literals where the type
    # allows; (-x)*2 + y -> x*(-2) + y
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[3]
        02 LOAD S1, ptr_p : f64[3]
        ; Phase 2: backward
        03 GRAD_INIT T0, 2.0 : f64[]
        04 GRAD_INIT T1, 0.5 : f64[]
        05 ACC_GRAD T2, T0, T1 : f64[]
        06 FMA T3, 1.0, S0, 0.0 : f64[3]
        07 FMA T4, 0.0, S0, S1 : f64[3]
        08 FMA T5, 2.0, S1, T3 : f64[3]
        09 SUM T6, T5, axis=() : f64[3]
        10 ELEM T7, sin, T1 : f64[]
        11 ELEM T8, broadcast, T7, shape=(3,), bdims=() : f64[3]
        12 FMA T9, T8, T6, T4 : f64[3]
        13 FMA T10, T9, T2, 0.0 : f64[3]
        14 ELEM T11, neg, S0 : f64[3]
        15 FMA T12, T11, 2.0, S1 : f64[3]
        16 ELEM T13, ipow, T1, n=3 : f64[]
        17 FMA T14, T12, T13, T10 : f64[3]
        18 STORE ptr_q, T14 : f64[3]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[3]
        02 LOAD      S1, ptr_p                          : f64[3]
        ; Phase 2: backward
        03 GRAD_INIT T0, 2.0                            : f64[]
        04 GRAD_INIT T1, 0.5                            : f64[]
        05 GRAD_INIT T2, 2.5                            : f64[]
        06 FMA       T5, S1, 2.0, S0                    : f64[3]
        07 GRAD_INIT T7, 0.479425538604203              : f64[]
        08 GRAD_INIT T8, 0.479425538604203              : f64[3]
        09 FMA       T9, T5, 0.479425538604203, S1      : f64[3]
        10 FMA       T10, T9, 2.5, 0.0                  : f64[3]
        11 ELEM      T11, neg, S0                       : f64[3]
        12 FMA       T12, S0, -2.0, S1                  : f64[3]
        13 GRAD_INIT T13, 0.125                         : f64[]
        14 FMA       T14, T12, 0.125, T10               : f64[3]
        15 STORE     ptr_q, T14                         : f64[3]
    """)  # fmt: skip


def test_simplify_zero_first_addend_literal_first_factor_and_a_stale_negation():
    """ACC_GRAD(0, x) is x with the zero first; a literal factor moves second also with a literal addend,
    not with two literal factors; FMA(neg y, k, c) keeps the negation when a SYMP_STEP redefines y between
    them (folding it would read the updated y)."""
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        03 LOAD C0, ptr_c0 : f64[]
        ; Phase 2: backward
        04 GRAD_INIT T0, 0.0 : f64[]
        05 ACC_GRAD T1, T0, S1 : f64[]
        06 ELEM T2, neg, S0 : f64[]
        07 FMA T3, 2.0, S1, 0.5 : f64[]
        08 FMA T4, 2.0, 3.0, C0 : f64[]
        ; Phase 4: integrate
        09 SYMP_STEP S0, T3, 1.0*dt : f64[]
        ; Phase 2: backward
        10 FMA T5, T2, 2.0, C0 : f64[]
        11 FMA T6, T5, T1, T4 : f64[]
        12 STORE ptr_q, S0 : f64[]
        13 STORE ptr_p, T6 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 LOAD      C0, ptr_c0                         : f64[]
        ; Phase 2: backward
        04 GRAD_INIT T0, 0.0                            : f64[]
        05 ELEM      T2, neg, S0                        : f64[]
        06 FMA       T3, S1, 2.0, 0.5                   : f64[]
        07 FMA       T4, 2.0, 3.0, C0                   : f64[]
        ; Phase 4: integrate
        08 SYMP_STEP S0, T3, 1.0*dt                     : f64[]
        ; Phase 2: backward
        09 FMA       T5, T2, 2.0, C0                    : f64[]
        10 FMA       T6, T5, S1, T4                     : f64[]
        11 STORE     ptr_q, S0                          : f64[]
        12 STORE     ptr_p, T6                          : f64[]
    """)  # fmt: skip


def test_a_copy_that_cannot_rename_lets_the_later_rules_fire():
    """FMA(neg y, 1, 0) is a copy of neg y, but a SYMP_STEP updates its result in place, so the copy is
    refused; the rules after it still apply (fma_neg, then FMA(y, -1, 0) -> neg y)."""
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        ; Phase 2: backward
        03 ELEM T0, neg, S1 : f64[]
        04 FMA T1, T0, 1.0, 0.0 : f64[]
        ; Phase 4: integrate
        05 SYMP_STEP T1, S0, 1.0*dt : f64[]
        06 STORE ptr_q, T1 : f64[]
        07 STORE ptr_p, T0 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        ; Phase 2: backward
        03 ELEM      T0, neg, S1                        : f64[]
        04 ELEM      T1, neg, S1                        : f64[]
        ; Phase 4: integrate
        05 SYMP_STEP T1, S0, 1.0*dt                     : f64[]
        06 STORE     ptr_q, T1                          : f64[]
        07 STORE     ptr_p, T0                          : f64[]
    """)  # fmt: skip


def test_the_step_size_is_no_register_to_copy():
    """FMA(dt, 1, 0) is dt, but ``dt`` has no definition and no type in the program: simplify keeps the
    FMA (asking for dt's type must not fail)."""
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        ; Phase 2: backward
        03 FMA T0, dt, 1.0, 0.0 : f64[]
        04 FMA T1, T0, S1, S0 : f64[]
        05 STORE ptr_q, T1 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        ; Phase 2: backward
        03 FMA       T0, dt, 1.0, 0.0                   : f64[]
        04 FMA       T1, T0, S1, S0                     : f64[]
        05 STORE     ptr_q, T1                          : f64[]
    """)  # fmt: skip


def test_constants_fold_in_a_dtype_without_a_short_name():
    """int16 (listed by its numpy name) folds as int16 arithmetic: 300 * 300 wraps to 24464, as the
    kernel and XLA compute it, not 90000."""
    prog = verify(parse(_text("""
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : int16[]
        02 FMA       T0, 300.0, 300.0, 0.0              : int16[]
        03 FMA       T1, S0, T0, 0.0                    : int16[]
        04 STORE     ptr_q, T1                          : int16[]
    """)))  # fmt: skip
    with np.errstate(over="ignore"):
        want = float(np.int16(300) * np.int16(300))
    assert want == 24464.0
    assert verify(simplify(prog)).instrs[2].args == ("S0", want, 0.0)


def test_simplify_elem_identities():
    """Each ELEM identity of ``simplify.elem_identity`` fires exactly where it applies (the mutation run's
    survivors: no test reached neg(neg y), ipow with n = 1, or a div whose numerator is not 1)."""
    check_pass(simplify, """
        ; Phase 1: forward
        01 LOAD S0, ptr_q : f64[]
        02 LOAD S1, ptr_p : f64[]
        03 ELEM T0, neg, S0 : f64[]
        04 ELEM T1, neg, T0 : f64[]
        05 ELEM T2, ipow, S1, n=1 : f64[]
        06 ELEM T3, ipow, S0, n=2 : f64[]
        07 ELEM T4, ipow, S0, n=3 : f64[]
        08 ELEM T5, div, 1.0, S1 : f64[]
        09 ELEM T6, div, 2.0, S1 : f64[]
        10 ELEM T7, convert, T1, dtype=f64 : f64[]
        11 ELEM T8, reshape, T2, shape=() : f64[]
        12 ELEM T9, broadcast, T3, shape=(), bdims=() : f64[]
        13 FMA T10, T7, T8, T9 : f64[]
        14 FMA T11, T4, T5, T6 : f64[]
        15 FMA T12, T10, 1.0, T11 : f64[]
        16 STORE ptr_p, T12 : f64[]
    """, """
        ; Phase 1: forward
        01 LOAD      S0, ptr_q                          : f64[]
        02 LOAD      S1, ptr_p                          : f64[]
        03 ELEM      T0, neg, S0                        : f64[]
        04 ELEM      T3, sq, S0                         : f64[]
        05 ELEM      T4, ipow, S0, n=3                  : f64[]
        06 ELEM      T5, recip, S1                      : f64[]
        07 ELEM      T6, div, 2.0, S1                   : f64[]
        08 FMA       T10, S0, S1, T3                    : f64[]
        09 FMA       T11, T4, T5, T6                    : f64[]
        10 FMA       T12, T10, 1.0, T11                 : f64[]
        11 STORE     ptr_p, T12                         : f64[]
    """)  # fmt: skip
