"""TP-IR data model: printer/parser round trip, verifier, seed-style listing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.ir import Instr, Op, Program, parse, to_text, verify
from tpjax.ir.verify import VerifyError

from .hamiltonians import ZOO

jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("method", ["symplectic_euler", "leapfrog", "yoshida4"])
def test_print_parse_round_trip(name, method):
    H, s0 = ZOO[name]
    comp = tpjax.compile(H, s0(), method=method)
    for prog in (comp.source, comp.step, comp.energy):
        text = to_text(prog)
        again = parse(text, opaque=prog.opaque)
        assert again == prog
        assert to_text(again) == text
        verify(again)


def test_harmonic_listing_reads_like_the_seed():
    comp = tpjax.compile(lambda q, p: 0.5 * p**2 + 0.5 * q**2, (1.0, 0.0), method="symplectic_euler")
    text = to_text(comp.source)
    phases = [ln for ln in text.splitlines() if ln.startswith("; Phase")]
    assert phases[0] == "; Phase 1: forward"
    assert any(ln.startswith("; Phase 2: backward") for ln in phases)
    assert any(ln.startswith("; Phase 3: poisson") for ln in phases)
    assert any(ln.startswith("; Phase 4: integrate") for ln in phases)
    lines = [ln for ln in text.splitlines() if not ln.startswith(";")]
    assert [ln.split()[0] for ln in lines] == [f"{n:02d}" for n in range(1, len(lines) + 1)]
    ops = [ln.split()[1] for ln in lines]
    for op in ("LOAD", "ELEM", "FMA", "GRAD_INIT", "POISSON_J", "SYMP_STEP", "STORE"):
        assert op in ops
    assert "POISSON_J F0, G" in text and "type=PASS" in text and "type=NEGATE" in text
    assert "SYMP_STEP S0, F0, 1.0*dt" in text
    # the symplectic schedule: the kick's gradient is computed after the drift has updated q (S0)
    drift = ops.index("SYMP_STEP")
    assert "GRAD_INIT" in ops[drift:] and ops[drift:].index("GRAD_INIT") > 0


def test_every_instruction_carries_dtype_and_shape():
    comp = tpjax.compile(ZOO["fpu"][0], ZOO["fpu"][1](), method="leapfrog")
    for i in comp.source.instrs:
        assert i.dtype in ("f64", "f32", "i32", "i64", "bool") and isinstance(i.shape, tuple)
    assert ": f64[8]" in to_text(comp.source)


def test_parser_rejects_garbage_with_line_number():
    with pytest.raises(ValueError, match="line 1"):
        parse("01 FROB S0, S1 : f32[]")
    with pytest.raises(ValueError, match="line 2"):
        parse("01 LOAD S0, ptr_q : f32[]\nnot an instruction")


def test_verifier_catches_use_before_def_and_bad_ops():
    good = Instr(Op.LOAD, ("S0",), ("ptr_q",), (), "f32", ())
    bad_read = Instr(Op.FMA, ("T0",), ("S0", "T9", 0.0), (), "f32", ())
    with pytest.raises(VerifyError, match="T9"):
        verify(Program((good, bad_read)))
    bad_elem = Instr(Op.ELEM, ("T0",), ("S0",), (("func", "frobnicate"),), "f32", ())
    with pytest.raises(VerifyError, match="frobnicate"):
        verify(Program((good, bad_elem)))
    bad_arity = Instr(Op.FMA, ("T0",), ("S0",), (), "f32", ())
    with pytest.raises(VerifyError, match="operands"):
        verify(Program((good, bad_arity)))


def test_opaque_ops_are_listed_and_run_by_xla():
    W = jnp.arange(9.0).reshape(3, 3) / 10

    def H(q, p):  # dot_general has no TP-IR form
        return 0.5 * p @ p + jnp.sum(jnp.tanh(W @ q))

    comp = tpjax.compile(H, (jnp.ones(3), jnp.zeros(3)))
    text = to_text(comp.source)
    assert "OPAQUE" in text and "dot_general#" in text and "run by XLA" in text
    assert not comp.step.fully_tpir
    q, p = tpjax.integrate(H, (jnp.ones(3), jnp.zeros(3)), dt=0.01, steps=10)
    assert jnp.all(jnp.isfinite(q)) and q.shape == (3,)
    qr, pr = jnp.ones(3), jnp.zeros(3)  # leapfrog written with jax.grad: the OPAQUE op's values are right
    dV, dT = jax.grad(H, argnums=0), jax.grad(H, argnums=1)
    for _ in range(10):
        pr = pr - 0.005 * dV(qr, pr)
        qr = qr + 0.01 * dT(qr, pr)
        pr = pr - 0.005 * dV(qr, pr)
    np.testing.assert_allclose(q, qr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(p, pr, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["fpu", "henon_heiles"])
def test_slices_pads_and_concatenation_are_tp_ir(name):
    """jnp indexing and concatenation map to ELEM slice / pad (and sums of pads): no OPAQUE op is left."""
    H, s0 = ZOO[name]
    comp = tpjax.compile(H, s0())
    assert comp.step.fully_tpir
    text = to_text(comp.source)
    assert "ELEM" in text and ("slice" in text or "pad" in text)
