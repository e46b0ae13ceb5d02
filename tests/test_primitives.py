"""Every TP-IR primitive: check_grads (fwd + rev), vmap over each operand axis / unmapped / nested,
static parameters stay static, dt is an operand."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import tpjax
from tpjax import primitives as P

jax.config.update("jax_enable_x64", True)

rng = np.random.default_rng(0)


def _r(*shape, positive=False):
    x = rng.normal(size=shape)
    return jnp.asarray(np.abs(x) + 0.5 if positive else x)


#: name -> (function of operands, per-member operand shapes, positive operands?)
CASES = {
    "fma": (lambda a, b, c: P.fma(a, b, c), [(3,), (3,), (3,)], False),
    "fma_scalar_c": (lambda a, b: P.fma(a, b, 0.5), [(3,), (3,)], False),
    "acc_grad": (P.acc_grad, [(3,), (3,)], False),
    "sum": (lambda x: P.tp_sum(x, (0,)), [(3,)], False),
    "sum_axis1": (lambda x: P.tp_sum(x, (1,)), [(2, 3)], False),
    "poisson_pass": (lambda g: P.poisson_j(g, kind="PASS"), [(3,)], False),
    "poisson_negate": (lambda g: P.poisson_j(g, kind="NEGATE"), [(3,)], False),
    "poisson_lie": (lambda g, L: P.poisson_j(g, L, kind="LIE"), [(3,), (3,)], False),
    "poisson_matrix": (lambda g, J: P.poisson_j(g, J, kind="MATRIX"), [(3,), (3, 3)], False),
    "lie_cross": (P.lie_cross, [(3,), (3,)], False),
    "symp_step": (lambda s, f, dt: P.symp_step(s, f, dt, 0.5), [(3,), (3,), ()], False),
    "load": (P.load, [(3,)], False),
    "store": (P.store, [(3,)], False),
    "elem_broadcast": (lambda x: P.elem("broadcast", x, shape=(2, 3), bdims=(1,)), [(3,)], False),
    "elem_reshape": (lambda x: P.elem("reshape", x, shape=(3, 2)), [(6,)], False),
    "elem_convert": (lambda x: P.elem("convert", x, dtype="float32"), [(3,)], False),
    "elem_slice": (lambda x: P.elem("slice", x, start=(1,), limit=(3,)), [(4,)], False),
    "elem_pad": (lambda x: P.elem("pad", x, lo=(1,), hi=(2,)), [(3,)], False),
}
for f in ("sin", "cos", "tan", "exp", "log", "sqrt", "rsqrt", "sq", "neg", "recip", "tanh", "abs",
          "log1p", "expm1", "logistic"):  # fmt: skip
    CASES[f"elem_{f}"] = (
        (lambda f: lambda x: P.elem(f, x))(f),  # noqa: B023 (f is bound by the outer lambda)
        [(3,)],
        f in ("log", "sqrt", "rsqrt", "abs", "recip", "log1p"),
    )
CASES["elem_tan"] = (lambda x: P.elem("tan", x), [(3,)], False)  # inputs scaled below: away from pi/2
CASES["elem_ipow"] = (lambda x: P.elem("ipow", x, n=3), [(3,)], False)
for f in ("div", "pow", "max", "min", "atan2"):
    CASES[f"elem_{f}"] = ((lambda f: lambda x, y: P.elem(f, x, y))(f), [(3,), (3,)], True)  # noqa: B023 (f is bound by the outer lambda)

NONDIFF = {"elem_convert"}


@pytest.mark.parametrize("name", sorted(set(CASES) - NONDIFF))
def test_check_grads(name):
    fn, shapes, pos = CASES[name]
    args = [_r(*s, positive=pos) for s in shapes]
    if name == "elem_tan":
        args = [0.3 * a for a in args]
    check_grads(fn, args, order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_convert_has_a_transpose():
    x = _r(3)
    g = jax.grad(lambda x: jnp.sum(P.elem("convert", x, dtype="float32").astype(jnp.float64) ** 2))(x)
    np.testing.assert_allclose(g, 2 * np.asarray(x), rtol=1e-6)


def _batched(x, axis, n=4):
    """``n`` members stacked along ``axis`` (None: the unbatched operand itself)."""
    if axis is None:
        return x
    return jnp.stack([x * (1 + 0.1 * k) for k in range(n)], axis=axis)


def _member(x, axis, k):
    return x if axis is None else jnp.take(x, k, axis=axis)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmap_each_operand_axis(name):
    fn, shapes, pos = CASES[name]
    base = [_r(*s, positive=pos) for s in shapes]
    options = [(0, 1, None) if len(s) >= 1 else (0, None) for s in shapes]
    for axes in itertools.product(*options):
        if all(a is None for a in axes):
            continue
        args = [_batched(x, a) for x, a in zip(base, axes, strict=True)]
        out = jax.vmap(fn, in_axes=axes)(*args)
        ref = jnp.stack([fn(*[_member(x, a, k) for x, a in zip(args, axes, strict=True)]) for k in range(4)])
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12, err_msg=f"in_axes={axes}")


@pytest.mark.parametrize("name", ["fma", "lie_cross", "symp_step", "elem_sin", "sum_axis1", "elem_broadcast"])
def test_nested_vmap(name):
    fn, shapes, pos = CASES[name]
    args = [jnp.stack([_batched(_r(*s, positive=pos), 0, 3) for _ in range(2)]) for s in shapes]
    out = jax.vmap(jax.vmap(fn))(*args)
    ref = jnp.stack([jnp.stack([fn(*[x[i, j] for x in args]) for j in range(3)]) for i in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_static_params_stay_static():
    jx = jax.make_jaxpr(lambda x, dt: P.symp_step(x, P.elem("ipow", x, n=3), dt, 0.5))(_r(3), 0.1)
    eqns = {e.primitive.name: e for e in jx.jaxpr.eqns}
    assert eqns["tp_elem"].params == {"func": "ipow", "n": 3} and len(eqns["tp_elem"].invars) == 1
    assert eqns["tp_symp_step"].params == {"coef": 0.5, "impl": "xla"} and len(eqns["tp_symp_step"].invars) == 3
    for e in jx.jaxpr.eqns:
        hash(tuple(sorted(e.params.items())))  # hashable


def test_changing_dt_does_not_recompile():
    traces = []

    def H(q, p):
        traces.append(1)
        return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2)

    f = jax.jit(lambda s, dt: tpjax.integrate(H, s, dt=dt, steps=5))
    s = (jnp.ones(2), jnp.zeros(2))
    a = f(s, 0.01)
    n = len(traces)
    b = f(s, 0.02)
    assert len(traces) == n, "a new dt retraced the program"
    assert not np.allclose(a[0], b[0])


def test_integrate_runs_through_tpjax_primitives():
    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    jx = jax.make_jaxpr(lambda s: tpjax.integrate(H, s, dt=0.1, steps=3, backend="xla"))((1.0, 0.0))
    text = str(jx)
    # (the canonical pass turns POISSON_J PASS/NEGATE into moves and step signs: none remain here)
    for name in ("tp_symp_step", "tp_elem", "tp_load", "tp_store"):
        assert name in text, name
    so3 = jax.make_jaxpr(
        lambda L: tpjax.integrate(lambda L: jnp.sum(L**2 / jnp.array([1.0, 2.0, 3.0])), L, dt=0.1, steps=2,
                                  structure="so3", method="implicit_midpoint"))(jnp.ones(3))  # fmt: skip
    assert "tp_lie_cross" in str(so3)
