"""Property-based tests (hypothesis) on random Hamiltonians built from polynomial, trigonometric,
exponential and rational terms, separable and not.

Properties: the compiled TP-IR flow program (run by ``tpjax.codegen.reference.run``) equals
(dH/dp, -dH/dq) from ``jax.grad``; one compiled leapfrog step equals leapfrog written with ``jax.grad``;
the reversible adjoint's gradient equals the direct one on short runs; every program's listing parses
back to the same program; and (GPU) the fused kernel equals the XLA path. The default profile is
derandomised with few examples; the ``slow`` profile runs more.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tpjax
from tpjax.codegen import reference
from tpjax.integrators.stepper import program_inputs as _inputs
from tpjax.ir import parse, to_text

jax.config.update("jax_enable_x64", True)

FAST = settings(derandomize=True, max_examples=6, deadline=None, database=None)
LONG = settings(derandomize=True, max_examples=15, deadline=None, database=None)

coef = st.floats(0.2, 1.5)
#: one potential-like term of a variable x: (kind, a, b) -> a * f(b x)
TERM = st.tuples(st.sampled_from(["poly2", "poly3", "poly4", "cos", "sin", "exp", "rational"]), coef, coef)


def term(kind, a, b, x):
    y = b * x
    return (
        a
        * {
            "poly2": lambda: y**2,
            "poly3": lambda: y**3 / 3.0 + y**2,
            "poly4": lambda: y**4 - y**2,
            "cos": lambda: -jnp.cos(y),
            "sin": lambda: jnp.sin(y) * y,
            "exp": lambda: jnp.exp(-(y**2)),
            "rational": lambda: 1.0 / (1.0 + y**2),
        }[kind]()
    )


@st.composite
def hamiltonians(draw, separable: bool):
    """(H, description): H(q, p) = sum V-terms(q) + 1/2 m |p|^2 (+ a coupling term unless separable)."""
    vs = draw(st.lists(TERM, min_size=1, max_size=3))
    ts = draw(st.lists(TERM.filter(lambda t: t[0] in ("poly4", "rational", "cos")), max_size=1))
    m = draw(coef)
    cpl = None if separable else draw(st.tuples(st.sampled_from(["qp2", "sinq_p2", "exp"]), coef))

    def H(q, p):
        e = 0.5 * m * jnp.sum(p**2) + sum(jnp.sum(term(k, a, b, q)) for k, a, b in vs)
        e = e + sum(0.1 * jnp.sum(term(k, a, b, p)) for k, a, b in ts)
        if cpl is not None:
            kind, c = cpl
            e = e + 0.2 * c * jnp.sum({"qp2": q * p**2, "sinq_p2": jnp.sin(q) * p**2,
                                       "exp": jnp.exp(-(q**2)) * p**2}[kind])  # fmt: skip
        return e

    return H, (vs, ts, m, cpl)


states = st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))


def _state(s):
    return jnp.array(s[:2]), jnp.array(s[2:])


def check_flow(Hd, s):
    H, _ = Hd
    q, p = _state(s)
    comp = tpjax.compile(H, (q, p), method="implicit_midpoint")
    out = reference.run(comp.step, _inputs(comp, (q, p), comp.consts))
    dq, dp = jax.grad(H, argnums=(0, 1))(q, p)
    np.testing.assert_allclose(out["ptr_flow0"], dp, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["ptr_flow1"], -dq, rtol=1e-12, atol=1e-12)
    energy = reference.run(comp.energy, _inputs(comp, (q, p), comp.consts))["ptr_E"]
    np.testing.assert_allclose(energy, H(q, p), rtol=1e-13, atol=1e-13)
    for prog in (comp.step, comp.source, comp.energy):  # the listing round-trips
        assert parse(to_text(prog)) == prog
    for i in comp.step.instrs:  # every instruction is typed; the flow has the state's shape
        assert i.dtype == "f64" and isinstance(i.shape, tuple), i
        if i.op.name in ("POISSON_J", "STORE"):
            assert i.shape == q.shape, i


def check_leapfrog_step(Hd, s):
    H, _ = Hd
    q, p = _state(s)
    h = 0.1
    q1, p1 = tpjax.integrate(H, (q, p), dt=h, steps=1, method="leapfrog")
    dV = jax.grad(H, argnums=0)
    dT = jax.grad(H, argnums=1)
    ph = p - 0.5 * h * dV(q, p)
    qn = q + h * dT(q, ph)
    pn = ph - 0.5 * h * dV(qn, ph)
    np.testing.assert_allclose(q1, qn, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(p1, pn, rtol=1e-12, atol=1e-13)
    comp = tpjax.compile(H, (q, p), method="leapfrog")
    assert parse(to_text(comp.step)) == comp.step
    if comp.prologue is not None:
        assert parse(to_text(comp.prologue)) == comp.prologue


def check_adjoint(Hd, s):
    H, _ = Hd
    q0, p0 = _state(s)

    def loss(q0, adjoint):
        q, p = tpjax.integrate(H, (q0, p0), dt=0.05, steps=20, method="leapfrog", adjoint=adjoint)
        return jnp.sum(q**2) + jnp.sum(jnp.sin(p))

    g_rev = jax.grad(loss)(q0, "reversible")
    g_dir = jax.grad(loss)(q0, "direct")
    np.testing.assert_allclose(g_rev, g_dir, rtol=1e-9, atol=1e-11)


@FAST
@given(hamiltonians(separable=False), states)
def test_compiled_flow_is_the_jax_gradient(Hd, s):
    check_flow(Hd, s)


@FAST
@given(hamiltonians(separable=True), states)
def test_compiled_leapfrog_step_is_leapfrog_of_jax_grad(Hd, s):
    check_leapfrog_step(Hd, s)


@FAST
@given(hamiltonians(separable=True), states)
def test_reversible_adjoint_equals_direct(Hd, s):
    check_adjoint(Hd, s)


@pytest.mark.slow
@LONG
@given(hamiltonians(separable=False), states)
def test_compiled_flow_is_the_jax_gradient_long(Hd, s):
    check_flow(Hd, s)


@pytest.mark.slow
@LONG
@given(hamiltonians(separable=True), states)
def test_leapfrog_step_and_adjoint_long(Hd, s):
    check_leapfrog_step(Hd, s)
    check_adjoint(Hd, s)


@pytest.mark.gpu
@settings(derandomize=True, max_examples=10, deadline=None, database=None)
@given(hamiltonians(separable=True), states)
def test_fused_kernel_equals_xla(Hd, s):
    H, _ = Hd
    q0, p0 = _state(s)
    qs = q0[None] + 0.1 * jnp.arange(64.0)[:, None] / 64
    ps = jnp.broadcast_to(p0, qs.shape)
    run = lambda backend: jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.05, steps=100, backend=backend))
    got, want = run("triton")(qs, ps), run("xla")(qs, ps)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-11)
