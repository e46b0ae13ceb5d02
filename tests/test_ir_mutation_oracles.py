"""Oracles for tpjax/ir (ELEM registry, nodes), written against mutmut's survivors (printer, parser and
verifier: tests/test_ir_text_oracles.py).

The ELEM registry is checked by evaluation: folds against their numpy meaning, derivatives against central
differences, Triton templates evaluated on numpy stand-ins for ``tl`` / ``libdevice``. The table is also
rebuilt from its module source (``runpy``) so that the code that builds it runs inside the test."""

import math
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from tpjax.ir import Instr, Op, Program, to_text
from tpjax.ir import elem_table as et

jax.config.update("jax_enable_x64", True)

BINARY = {"div", "pow", "max", "min", "atan2", "ge"}  # ops.py: BINARY take two operands
LAYOUT = {"broadcast", "reshape", "convert", "slice", "pad"}  # ops.py: LAYOUT only move data
A = np.array([0.21, 0.47, 0.73])  # inside every unary domain; B crosses A (max / min / ge take both branches)
B = np.array([1.3, 0.3, 0.6])
PARAMS = {"ipow": {"n": 3}}


class _NumT:
    """The ``t`` of a derivative rule, evaluated on numpy values: t.fma(a, b, c=0) = a*b + c."""

    def __init__(self, table):
        self.table = table

    def fma(self, a, b, c=0.0):
        return np.asarray(a) * b + c

    def elem(self, func, *xs, **params):
        return self.table[func].fold(*xs, **params)


def _numeric_grad(f, xs, k, h=1e-6):
    lo, hi = list(xs), list(xs)
    lo[k], hi[k] = xs[k] - h, xs[k] + h
    return (f(*hi) - f(*lo)) / (2 * h)


def _check_registry(table):
    math_names = [n for n, f in table.items() if f.kind != et.LAYOUT_KIND]
    assert {n for n, f in table.items() if f.kind == et.BINARY_KIND} == BINARY
    assert {n for n, f in table.items() if f.kind == et.LAYOUT_KIND} == LAYOUT
    for name, f in table.items():
        assert f.name == name and f.kind in (et.UNARY_KIND, et.BINARY_KIND, et.LAYOUT_KIND)
        assert f.arity == (2 if name in BINARY else 1)
        assert isinstance(f.jax, tuple) and isinstance(f.cost, tuple)
        assert all(isinstance(k, str) and isinstance(c, int) and c > 0 for k, c in f.cost)
    for name in math_names:
        f, p = table[name], PARAMS.get(name, {})
        xs = (A, B) if f.arity == 2 else (A,)
        y = f.fold(*xs, **p)
        np.testing.assert_allclose(np.asarray(f.jnp(*xs, **p), np.float64), y, rtol=1e-12)
        y32 = f.fold(*(x.astype(np.float32) for x in xs), **p)
        assert y32.dtype == (np.bool_ if name == "ge" else np.float32)  # folds keep the dtype (ge: a mask)
        assert f.cost and f.deriv is not None
        d = f.deriv(_NumT(table), *xs, y, p)
        d = d if f.arity == 2 else (d,)
        for k in range(f.arity):
            want = _numeric_grad(lambda *v, f=f, p=p: np.asarray(f.fold(*v, **p), np.float64), xs, k)
            got = np.zeros_like(A) if d[k] is None else np.broadcast_to(np.asarray(d[k], np.float64), A.shape)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=f"d{name}/dx{k}")


def test_registry_entries_evaluate_and_differentiate():
    _check_registry(et.ELEM)


def test_registry_rebuilt_from_its_source():
    fresh = {"__name__": et.__name__, "__file__": et.__file__}  # runs _add / _u / _b again, in a fresh namespace
    exec(compile(Path(et.__file__).read_text(), et.__file__, "exec"), fresh)
    table = fresh["ELEM"]
    assert list(table) == list(et.ELEM)  # listing order: unary, binary, layout
    data = ("name", "kind", "triton", "triton_f64", "fast", "jax", "cost")
    for name, f in table.items():
        assert [getattr(f, k) for k in data] == [getattr(et.ELEM[name], k) for k in data], name
    _check_registry(table)
    assert fresh["BY_JAX_NAME"] == {j: n for n, f in table.items() for j in f.jax}
    assert all(f.triton is not None for n, f in table.items() if n not in LAYOUT | {"ipow"})


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -2])
def test_integer_power_derivative(n):
    d = et.ELEM["ipow"].deriv(_NumT(et.ELEM), A, A**n, {"n": n})
    want = n * A ** (n - 1) if n else np.zeros_like(A)
    np.testing.assert_allclose(np.zeros_like(A) if d is None else np.broadcast_to(d, A.shape), want, rtol=1e-12)


class _CountT(_NumT):
    def elem(self, func, *xs, **params):
        self.calls = getattr(self, "calls", 0) + 1
        return super().elem(func, *xs, **params)


def test_integer_power_derivative_needs_a_power_only_from_cubes_on():
    for n, calls in ((0, 0), (1, 0), (2, 0), (3, 1), (4, 1)):  # d(x**2) = 2*x: one FMA, no ipow of exponent 1
        t = _CountT(et.ELEM)
        et.ELEM["ipow"].deriv(t, A, A**n, {"n": n})
        assert getattr(t, "calls", 0) == calls, n


def test_erf_fold_matches_math_erf_and_keeps_float32():
    x = np.array([-1.5, 0.0, 0.3, 2.0])
    np.testing.assert_allclose(et.ELEM["erf"].fold(x), [math.erf(v) for v in x], rtol=1e-15)
    assert et.ELEM["erf"].fold(x.astype(np.float32)).dtype == np.float32


_LIBDEVICE = dict(rsqrt=lambda x: 1 / np.sqrt(x), sqrt_rn=np.sqrt, erf=et.ELEM["erf"].fold, atan=np.arctan,
                  asin=np.arcsin, acos=np.arccos, asinh=np.arcsinh, atanh=np.arctanh, atan2=np.arctan2,
                  pow=np.power)  # fmt: skip


def _tl_eval(template, xs):
    lib = types.SimpleNamespace(**{n: getattr(np, n) for n in ("tan", "exp", "log", "tanh", "log1p", "expm1",
                                   "sinh", "cosh", "floor", "ceil")}, **_LIBDEVICE)  # fmt: skip
    tl = types.SimpleNamespace(sin=np.sin, cos=np.cos, abs=np.abs, where=np.where, maximum=np.maximum,
                               minimum=np.minimum, sqrt_rn=np.sqrt)  # fmt: skip
    env = {"tl": tl, "libdevice": lib, "_sin_approx": np.sin, "_cos_approx": np.cos, "_exp_approx": np.exp}
    return eval(template.format(x="x", y="y"), env, {"x": xs[0], "y": xs[-1]})


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_triton_templates_compute_the_function(dtype):
    for name, f in et.ELEM.items():
        xs = (A, B) if f.arity == 2 else (A,)
        if f.kind == et.LAYOUT_KIND or name == "ipow":
            assert f.template(dtype) is None  # emitted structurally, not from a template
            continue
        tpl = f.template(dtype)
        assert tpl == (f.triton_f64 or f.triton if dtype == "f64" else f.triton)
        assert dtype == "f32" or "tl.sqrt_rn" not in tpl  # tl.sqrt_rn is float32 only
        np.testing.assert_allclose(_tl_eval(tpl, xs), f.fold(*xs, **PARAMS.get(name, {})), rtol=1e-12)
        if f.fast is not None:
            np.testing.assert_allclose(_tl_eval(f.fast, xs), f.fold(*xs), rtol=1e-12)
    assert et.ELEM["sqrt"].template("f64") != et.ELEM["sqrt"].template("f32")


def test_names_partition_the_registry_and_lookup_explains():
    kinds = (et.UNARY_KIND, et.BINARY_KIND, et.LAYOUT_KIND)
    assert sum((et.names(k) for k in kinds), ()) == tuple(et.ELEM)
    assert set(et.names(et.BINARY_KIND)) == BINARY and et.names("no such kind") == ()
    assert et.lookup("sin") is et.ELEM["sin"]
    with pytest.raises(KeyError, match=r"unknown ELEM function 'frob'.*elem_table\.py.*'sin'"):
        et.lookup("frob")


# -- nodes ---------------------------------------------------------------------------------------------------------


def _ins(op, dst, args=(), attrs=(), **kw):
    return Instr(op, dst if isinstance(dst, tuple) else (dst,), tuple(args), tuple(attrs), **kw)


def _small():
    loads = (_ins(Op.LOAD, "S0", ["ptr_q"]), _ins(Op.LOAD, "S1", ["ptr_p"]), _ins(Op.FMA, "T0", ["S0", 2.0, "S1"]))
    return Program((*loads, _ins(Op.STORE, "ptr_q", ["T0"]), _ins(Op.STORE, "ptr_p", ["S1"])), (("method", "euler"),))


def test_instr_attr_with_and_type_of():
    tys = ("f64[3x4]", "f32[]", "i32[2x3x5]")
    i = _ins(
        Op.OPAQUE, ("T0", "T1", "T2"), ["S0"], [("func", "f"), ("key", 0), ("types", tys)], dtype="f16", shape=(7,)
    )
    assert i.attr("func") == "f" and i.attr("key") == 0 and i.attr("nope", 42) == 42
    assert (
        i.type_of("T0") == ("f64", (3, 4)) and i.type_of("T1") == ("f32", ()) and i.type_of("T2") == ("i32", (2, 3, 5))
    )
    assert i.type_of("S0") == ("f16", (7,))  # not a result: the instruction's own type
    assert _ins(Op.FMA, "T0", ["S0", 1.0, 0.0], dtype="f64", shape=(3,)).type_of("T0") == ("f64", (3,))
    j = i.with_(dtype="f64", comment="c")
    assert (j.dtype, j.comment, j.dst, j.attrs, i.dtype) == ("f64", "c", i.dst, i.attrs, "f16")


def test_program_equality_hash_and_queries():
    p, f, g = _small(), (lambda x: x), (lambda x: x)
    q = Program(p.instrs, p.meta)
    assert p == q and hash(p) == hash(q) and p.__eq__(5) is NotImplemented and p != 5
    assert p != p.with_instrs(p.instrs[:-1]) and p != Program(p.instrs, (("method", "other"),))
    assert Program(p.instrs, p.meta, (f,)) == Program(p.instrs, p.meta, (f,))
    assert Program(p.instrs, p.meta, (f,)) != Program(p.instrs, p.meta, (g,))
    assert Program(p.instrs, p.meta, (f,)) != Program(p.instrs, p.meta, (f, f)) != q
    variants = [p.with_instrs(p.instrs[:k]) for k in range(len(p) + 1)] + [Program(p.instrs)]
    assert len({hash(v) for v in variants}) == len(variants)  # distinct programs, distinct hashes
    r = Program(p.instrs, p.meta, (f,)).with_instrs(list(p.instrs[:2]))
    assert isinstance(r.instrs, tuple) and r.instrs == p.instrs[:2] and r.meta == p.meta and r.opaque[0] is f
    assert p.inputs() == (("S0", "ptr_q"), ("S1", "ptr_p")) and p.outputs() == (("ptr_q", "T0"), ("ptr_p", "S1"))
    assert (p.count(Op.LOAD), p.count(Op.FMA), p.count(Op.SUM), len(p)) == (2, 1, 0, 5)
    assert str(p) == repr(p) == to_text(p)


# -- printer / parser ----------------------------------------------------------------------------------------------
