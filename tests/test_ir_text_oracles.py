"""Oracles for tpjax/ir's printer, parser and verifier, written against mutmut's survivors (tests/MUTATION.md):
one program with every op and operand form round-trips and lists by the grammar of ``ir/printer.py``; the
parser's errors name the line; the verifier rejects each malformed program with its reason."""

import math
import re

import pytest

from tpjax.ir import Instr, Op, Program, parse, to_text, verify
from tpjax.ir.ops import PHASES
from tpjax.ir.verify import VerifyError


def _ins(op, dst, args=(), attrs=(), **kw):
    return Instr(op, dst if isinstance(dst, tuple) else (dst,), tuple(args), tuple(attrs), **kw)


def _every_op():
    """A program using every op and every operand / attribute form the grammar has (valid for verify)."""
    I, f64 = _ins, {"dtype": "f64", "shape": (3,)}
    sum_attrs = [("axis", (0,)), ("a", None), ("b", False), ("c", True), ("K", "f64[3x3]")]
    return Program((
        I(Op.LOAD, "S0", ["ptr_q"], **f64, stage="s0"), I(Op.LOAD, "S1", ["Infinity"], **f64, stage="s0"),
        I(Op.LOAD, "C0", ["infinity"], dtype="f64", shape=(3, 3), comment="a 3x3 parameter"),  # names, not float()
        I(Op.ELEM, "T0", ["S0"], [("func", "ipow"), ("n", -2)], **f64),
        I(Op.ELEM, "T1", ["T0", "S1"], [("func", "pow")], **f64),
        I(Op.ELEM, "T2", ["S0"], [("func", "broadcast"), ("shape", (2, 3)), ("bdims", (1,))], shape=(2, 3)),
        I(Op.ELEM, "T3", ["S0"], [("func", "slice"), ("start", ()), ("limit", ((1, 2), 3))], **f64),
        I(Op.FMA, "T4", ["T0", -0.25, "dt"], **f64), I(Op.FMA, "T5", ["T4", 1e-300, float("-inf")], **f64),
        I(Op.GRAD_INIT, "T6", [True], dtype="bool"), I(Op.GRAD_INIT, "T7", [False], dtype="bool"),
        I(Op.GRAD_INIT, "G0", [float("inf")], **f64, phase="backward"), I(Op.GRAD_INIT, "G1", [3], phase="backward"),
        I(Op.SUM, "E0", ["T5"], sum_attrs, phase="backward"),
        I(Op.ACC_GRAD, "G2", ["G0", "T1"], **f64, phase="backward"),
        I(Op.OPAQUE, ("T8", "T9"), ["C0", "G2"], [("func", "custom#jvp"), ("key", 1), ("types", ("f64[3x3]", "f32[]"))],
          phase="backward", comment="run by XLA"),
        I(Op.POISSON_J, "F0", ["G2"], [("type", "NEGATE")], **f64, phase="poisson"),
        I(Op.POISSON_J, "F1", ["G2", "C0"], [("type", "MATRIX")], **f64, phase="poisson"),
        I(Op.SYMP_STEP, "S1", ["F0", "dt"], [("coef", -0.675603595979829)], **f64, phase="integrate", stage="k1"),
        I(Op.SYMP_STEP, "S0", ["F1", "dt"], [("coef", 0.5), ("note", "x.y-z+1")], **f64, phase="integrate", stage="k1"),
        I(Op.LIE_CROSS, "F2", ["S0", "S1"], **f64, phase="integrate", stage="k 2 | last"),
        I(Op.STORE, "ptr_q", ["S0"], **f64, phase="integrate", stage="k 2 | last"),
    ), (("method", "leapfrog"), ("expr", "a=b")), (abs, max))  # fmt: skip


_HEAD = re.compile(r"^; Phase (\d): (\w+)( \| .+)?$")


def test_every_op_round_trips_and_lists_by_the_grammar():
    p = verify(_every_op())
    text = to_text(p)
    assert parse(text, opaque=p.opaque) == p and to_text(parse(text, opaque=p.opaque)) == text
    assert parse(text).opaque == () and parse(text).meta == p.meta
    lines = text.splitlines()
    assert lines[0] == "; TP-IR  method=leapfrog  expr=a=b"
    heads = [(ln, _HEAD.match(ln)) for ln in lines[1:] if ln.startswith("; ")]
    assert all(m and int(m.group(1)) == PHASES.index(m.group(2)) + 1 for _, m in heads)
    where = [(i.phase, i.stage) for i in p.instrs]
    assert len(heads) == len([k for k in range(len(where)) if k == 0 or where[k] != where[k - 1]])
    body = [ln for ln in lines if not ln.startswith(";")]
    assert [ln[:3] for ln in body] == [f"{n:02d} " for n in range(1, len(p) + 1)]
    assert "  ; a 3x3 parameter" in body[2] and body[2].endswith(": f64[3,3]  ; a 3x3 parameter")
    assert "ELEM      T0, ipow, S0, n=-2" in text and "(1,)" in text and "start=()" in text
    assert "OPAQUE    (T8, T9), custom#jvp#1, C0, G2, types=(f64[3x3],f32[])" in text
    assert "SYMP_STEP S1, F0, -0.675603595979829*dt" in text and "FMA       T4, T0, -0.25, dt" in text
    assert "GRAD_INIT T6, True" in text and "; Phase 4: integrate | k 2 | last" in text


def test_nan_literal_and_headerless_text():
    i = parse("01 GRAD_INIT T0, nan : f32[]").instrs[0]
    assert math.isnan(i.args[0]) and (i.phase, i.stage, i.comment, i.attrs) == ("forward", "", "", ())
    text = "01 LOAD      S0, ptr_q : f32[2]\n\n02 STORE     ptr_q, S0 : f32[2]  ; out  \n"
    want = Program(
        (_ins(Op.LOAD, "S0", ["ptr_q"], shape=(2,)), _ins(Op.STORE, "ptr_q", ["S0"], shape=(2,), comment="out"))
    )
    assert parse(text) == want  # blank lines skipped, trailing blanks ignored, defaults for phase and stage


def test_parser_errors_name_the_line():
    with pytest.raises(ValueError, match=r"^TP-IR line 3 is not an instruction or a header: 'garbage'$"):
        parse("01 LOAD S0, ptr : f32[]\n\ngarbage")
    with pytest.raises(ValueError, match=r"^TP-IR line 2: unknown op 'FROB'$"):
        parse("01 LOAD S0, ptr : f32[]\n02 FROB S1, S0 : f32[]")
    bad = Program((_ins(Op.SUM, "E0", ["S0"], [("axis", "two words")]),))
    with pytest.raises(ValueError, match=r"attribute value 'two words' cannot be printed as one TP-IR token"):
        to_text(bad)


# -- verifier ------------------------------------------------------------------------------------------------------

_Q = _ins(Op.LOAD, "S0", ["ptr_q"])


@pytest.mark.parametrize(
    "instr, message",
    [
        (_ins(Op.FMA, "T0", ["S0", 1.0]), r"instruction 02 \(FMA\): expected 3\.\.3 operands, got 2"),
        (_ins(Op.LOAD, "S1", ["a", "b"]), r"instruction 02 \(LOAD\): expected 1\.\.1 operands, got 2"),
        (_ins(Op.FMA, "T0", ["S0", 1.0, 0.0], phase="later"), r"02 \(FMA\): unknown phase 'later'"),
        (_ins(Op.STORE, "ptr", ["T3"]), r"02 \(STORE\): reads T3 before any instruction defines it"),
        (_ins(Op.SYMP_STEP, "S5", ["S0", "dt"], [("coef", 1.0)]), r"02 \(SYMP_STEP\): reads S5 before"),
        (_ins(Op.FMA, "ptr_x", ["S0", 1.0, 0.0]), r"02 \(FMA\): destination 'ptr_x' is not a register"),
        (_ins(Op.FMA, "S", ["S0", 1.0, 0.0]), r"destination 'S' is not a register \(S/G/F/T/E/C \+ number\)"),
        (_ins(Op.FMA, "X1", ["S0", 1.0, 0.0]), r"destination 'X1' is not a register"),
        (_ins(Op.FMA, "Tx", ["S0", 1.0, 0.0]), r"destination 'Tx' is not a register"),
        (_ins(Op.FMA, "dt", ["S0", 0.0, 5.0]), r"destination 'dt' is not a register"),  # dt is the run-time step
        (_ins(Op.ELEM, "T0", ["S0"], [("func", "frob")]), r"02 \(ELEM\): unknown ELEM function 'frob'"),
        (_ins(Op.ELEM, "T0", ["S0"], [("func", "div")]), r"02 \(ELEM\): ELEM div takes 2 operand\(s\)"),
        (_ins(Op.ELEM, "T0", ["S0", "S0"], [("func", "sin")]), r"02 \(ELEM\): ELEM sin takes 1 operand\(s\)"),
        (_ins(Op.POISSON_J, "F0", ["S0"], [("type", "SKEW")]), r"02 \(POISSON_J\): unknown POISSON_J type 'SKEW'"),
        (_ins(Op.POISSON_J, "F0", ["S0"]), r"unknown POISSON_J type None"),
        (_ins(Op.SYMP_STEP, "S0", ["S0", "S0"], [("coef", 1.0)]), r"02 \(SYMP_STEP\): SYMP_STEP takes \(flow, c\*dt\)"),
        (_ins(Op.SYMP_STEP, "S0", ["S0", "dt"]), r"SYMP_STEP takes \(flow, c\*dt\) and updates its state in place"),
        (_ins(Op.OPAQUE, "T0", ["S0"], [("func", "f"), ("key", 2)]), r"02 \(OPAQUE\): OPAQUE key 2 has no callable"),
        (_ins(Op.OPAQUE, "T0", ["S0"], [("func", "f"), ("key", -1)]), r"OPAQUE key -1 has no callable"),
        (_ins(Op.OPAQUE, "T0", ["S0"], [("func", "f")]), r"OPAQUE key None has no callable in Program\.opaque"),
    ],
)
def test_verifier_rejects_with_the_reason(instr, message):
    prog = Program((_Q, instr), opaque=(abs, abs))
    with pytest.raises(VerifyError, match=message):
        verify(prog)
    with pytest.raises(VerifyError, match=message.replace("02", "03")):  # numbered from 1, after a STORE too
        verify(Program((_Q, _ins(Op.STORE, "ptr", ["S0"]), instr), opaque=prog.opaque))


def test_verifier_accepts_the_boundaries():
    p = _every_op()
    assert verify(p) is p and verify(Program(())) == Program(())
    ok = [_Q, _ins(Op.OPAQUE, ("T0", "T1"), [], [("func", "f"), ("key", 0)])]
    ok += [_ins(Op.OPAQUE, "T2", ["T1"] * 3, [("func", "g"), ("key", 1)]), _ins(Op.FMA, "T12", ["T0", "T2", "dt"])]
    ok += [_ins(Op.SYMP_STEP, "S0", ["T12", "dt"], [("coef", 0.0)])]
    assert verify(Program(tuple(ok), opaque=(abs, abs))).instrs == tuple(ok)
