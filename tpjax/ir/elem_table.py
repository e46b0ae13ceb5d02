"""The ELEM registry: every ELEM function of TP-IR, described once.

Each entry says how many operands the function takes, how JAX spells it in a jaxpr, how to evaluate it
(``jnp``, the reference interpreter; ``fold``, numpy constant folding), its derivative written with TP-IR
ops, its Triton expression (precise; float64 override; float32 fast-math variant) and its arithmetic cost.
Every consumer reads this table: ``ir.ops`` (the name lists), ``ir.verify`` (names, arity),
``primitives.elem`` (impl, JVP), ``passes.simplify`` (folding), ``passes.lie_cross`` (cost),
``codegen.triton_emit`` (templates, folding) and ``frontend.from_jaxpr`` (jaxpr names). Adding a function
is one :func:`_add` line here. Data only: this module imports nothing from tpjax.

Derivatives: ``deriv(t, x, y, params)`` for a unary function returns dy/dx (or None when it is zero);
``deriv(t, a, b, y, params)`` for a binary one returns (dy/da, dy/db). ``t`` supplies the TP-IR ops
``t.elem(func, *xs, **params)`` and ``t.fma(a, b, c=0)``; ``y`` is the primal result. Layout functions are
linear (their JVP is the function applied to the tangent; ``primitives.elem`` owns their transposes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax

UNARY_KIND, BINARY_KIND, LAYOUT_KIND = "unary", "binary", "layout"


@dataclasses.dataclass(frozen=True)
class ElemFunc:
    """One ELEM function. ``triton`` templates use ``{x}`` (and ``{y}``) for the operands."""

    name: str
    kind: str  # "unary" | "binary" | "layout"
    jnp: Callable[..., Any]  # (*xs, **params) -> array (the reference interpreter)
    fold: Callable[..., Any] | None  # (*numpy values, **params) -> numpy value; None: never folded
    deriv: Callable[..., Any] | None  # see the module docstring; None for layout functions and zero derivatives
    triton: str | None = None  # precise Triton expression
    triton_f64: str | None = None  # the float64 expression where it differs
    fast: str | None = None  # float32 fast-math expression (PTX approximate instructions)
    bounded: str | None = None  # float32 precise expression for |x| <= kernels.trig.TRIG_BOUND (no slow path)
    jax: tuple[str, ...] = ()  # jaxpr primitive names that lower to this function
    cost: tuple[tuple[str, int], ...] = (("func", 1),)  # arithmetic per element (passes.lie_cross)

    @property
    def arity(self) -> int:
        return 2 if self.kind == BINARY_KIND else 1

    def template(self, dtype: str) -> str | None:
        return self.triton_f64 if dtype == "f64" and self.triton_f64 else self.triton


#: name -> ElemFunc, in listing order (unary, binary, layout).
ELEM: dict[str, ElemFunc] = {}


def _add(name, kind, jnp_fn, fold, deriv, triton=None, *, f64=None, fast=None, bounded=None, jax=(),
         cost=(("func", 1),)):  # fmt: skip
    ELEM[name] = ElemFunc(name, kind, jnp_fn, fold, deriv, triton, f64, fast, bounded, tuple(jax), tuple(cost))


def _u(name, *a, **k):
    _add(name, UNARY_KIND, *a, **k)


def _b(name, *a, **k):
    _add(name, BINARY_KIND, *a, **k)


def _erf_np(x):
    return np.vectorize(math.erf, otypes=[np.asarray(x).dtype])(x)


def _d_ipow(t, x, n):
    if n == 0:
        return None
    if n == 1:
        return t.fma(x, 0.0, 1.0)
    return t.fma(x if n == 2 else t.elem("ipow", x, n=n - 1), float(n))


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LIBM = "libdevice.{}({{x}})".format

# fmt: off
# unary: name, jnp, numpy fold, derivative dy/dx, Triton template
_u("sin", jnp.sin, np.sin, lambda t, x, y, p: t.elem("cos", x), "tl.sin({x})", fast="_sin_approx({x})",
   bounded="sin_bounded({x})", jax=("sin",))
_u("cos", jnp.cos, np.cos, lambda t, x, y, p: t.elem("neg", t.elem("sin", x)), "tl.cos({x})",
   fast="_cos_approx({x})", bounded="cos_bounded({x})", jax=("cos",))
_u("tan", jnp.tan, np.tan, lambda t, x, y, p: t.fma(y, y, 1.0), _LIBM("tan"), jax=("tan",))
_u("exp", jnp.exp, np.exp, lambda t, x, y, p: y, _LIBM("exp"), fast="_exp_approx({x})", jax=("exp",))
_u("log", jnp.log, np.log, lambda t, x, y, p: t.elem("recip", x), _LIBM("log"), jax=("log",))
_u("sqrt", jnp.sqrt, np.sqrt, lambda t, x, y, p: t.fma(t.elem("recip", y), 0.5), "tl.sqrt_rn({x})",
   f64="libdevice.sqrt_rn({x})", jax=("sqrt",))  # tl.sqrt_rn is float32 only
_u("rsqrt", lax.rsqrt, lambda x: 1 / np.sqrt(x), lambda t, x, y, p: t.fma(t.elem("div", y, x), -0.5),
   _LIBM("rsqrt"), jax=("rsqrt",))
_u("sq", lambda x: x * x, lambda x: x * x, lambda t, x, y, p: t.fma(x, 2.0), "({x} * {x})", jax=("square",),
   cost=(("mul", 1),))
_u("neg", jnp.negative, np.negative, lambda t, x, y, p: t.fma(x, 0.0, -1.0), "({x} * -1.0)", jax=("neg",),
   cost=(("neg", 1),))  # linear: primitives.elem differentiates it structurally
_u("recip", lambda x: 1 / x, lambda x: 1 / x, lambda t, x, y, p: t.elem("neg", t.elem("sq", y)), "(1.0 / {x})",
   cost=(("div", 1),))
_u("tanh", jnp.tanh, np.tanh, lambda t, x, y, p: t.fma(t.elem("neg", y), y, 1.0), _LIBM("tanh"), jax=("tanh",))
_u("abs", jnp.abs, np.abs, lambda t, x, y, p: t.elem("sign", x), "tl.abs({x})", jax=("abs",))
_u("sign", jnp.sign, np.sign, lambda t, x, y, p: None,
   "tl.where({x} > 0.0, 1.0, tl.where({x} < 0.0, -1.0, {x} * 0.0))", jax=("sign",))
_u("log1p", jnp.log1p, np.log1p, lambda t, x, y, p: t.elem("recip", t.fma(x, 1.0, 1.0)), _LIBM("log1p"),
   jax=("log1p",))
_u("expm1", jnp.expm1, np.expm1, lambda t, x, y, p: t.fma(y, 1.0, 1.0), _LIBM("expm1"), jax=("expm1",))
_u("logistic", lax.logistic, lambda x: 1 / (1 + np.exp(-x)), lambda t, x, y, p: t.fma(y, t.fma(y, -1.0, 1.0)),
   "(1.0 / (1.0 + libdevice.exp({x} * -1.0)))", jax=("logistic",))
_u("ipow", lambda x, n: lax.integer_pow(x, n), lambda x, n: x**n, lambda t, x, y, p: _d_ipow(t, x, p["n"]), None)
_u("erf", lax.erf, _erf_np, lambda t, x, y, p: t.fma(t.elem("exp", t.elem("neg", t.elem("sq", x))), _TWO_OVER_SQRT_PI),
   _LIBM("erf"), jax=("erf",))
_u("sinh", jnp.sinh, np.sinh, lambda t, x, y, p: t.elem("cosh", x), _LIBM("sinh"), jax=("sinh",))
_u("cosh", jnp.cosh, np.cosh, lambda t, x, y, p: t.elem("sinh", x), _LIBM("cosh"), jax=("cosh",))
_u("atan", jnp.arctan, np.arctan, lambda t, x, y, p: t.elem("recip", t.fma(x, x, 1.0)), _LIBM("atan"), jax=("atan",))
_u("asin", jnp.arcsin, np.arcsin, lambda t, x, y, p: t.elem("rsqrt", t.fma(t.elem("sq", x), -1.0, 1.0)),
   _LIBM("asin"), jax=("asin",))
_u("acos", jnp.arccos, np.arccos,
   lambda t, x, y, p: t.elem("neg", t.elem("rsqrt", t.fma(t.elem("sq", x), -1.0, 1.0))), _LIBM("acos"), jax=("acos",))
_u("asinh", jnp.arcsinh, np.arcsinh, lambda t, x, y, p: t.elem("rsqrt", t.fma(x, x, 1.0)), _LIBM("asinh"),
   jax=("asinh",))
_u("atanh", jnp.arctanh, np.arctanh, lambda t, x, y, p: t.elem("recip", t.fma(t.elem("sq", x), -1.0, 1.0)),
   _LIBM("atanh"), jax=("atanh",))
_u("floor", jnp.floor, np.floor, lambda t, x, y, p: None, _LIBM("floor"), jax=("floor",))
_u("ceil", jnp.ceil, np.ceil, lambda t, x, y, p: None, _LIBM("ceil"), jax=("ceil",))

# binary (numpy broadcasting): name, jnp, numpy fold, derivative (dy/da, dy/db), Triton template
_b("div", jnp.divide, np.divide, lambda t, a, b, y, p: (t.elem("recip", b), t.elem("neg", t.elem("div", y, b))),
   "({x} / {y})", jax=("div",), cost=(("div", 1),))
_b("pow", jnp.power, np.power,
   lambda t, a, b, y, p: (t.fma(b, t.elem("pow", a, t.fma(b, 1.0, -1.0))), t.fma(t.elem("log", a), y)),
   "libdevice.pow({x}, {y})", jax=("pow",))
_b("max", jnp.maximum, np.maximum, lambda t, a, b, y, p: _d_minmax(t, t.elem("ge", a, b)), "tl.maximum({x}, {y})",
   jax=("max",))
_b("min", jnp.minimum, np.minimum, lambda t, a, b, y, p: _d_minmax(t, t.elem("ge", b, a)), "tl.minimum({x}, {y})",
   jax=("min",))
_b("atan2", jnp.arctan2, np.arctan2, lambda t, a, b, y, p: _d_atan2(t, a, b), "libdevice.atan2({x}, {y})",
   jax=("atan2",))
_b("ge", lambda x, y: x >= y, lambda x, y: x >= y, lambda t, a, b, y, p: (None, None),
   "tl.where({x} >= {y}, 1.0, 0.0)")  # the 0/1 mask x >= y in the operands' float dtype (piecewise constant)

# layout (move data; static params): name, jnp, numpy fold of a uniform constant
_add("broadcast", LAYOUT_KIND, lambda x, shape, bdims: lax.broadcast_in_dim(x, shape, bdims), lambda x, **p: x,
     None, cost=())
_add("reshape", LAYOUT_KIND, lambda x, shape: jnp.reshape(x, shape), lambda x, **p: x, None, cost=())
_add("convert", LAYOUT_KIND, lambda x, dtype: lax.convert_element_type(x, np.dtype(dtype)), lambda x, **p: x,
     None, cost=())
_add("slice", LAYOUT_KIND, lambda x, start, limit: lax.slice(x, start, limit), lambda x, **p: x, None)
_add("pad", LAYOUT_KIND, lambda x, lo, hi: lax.pad(x, jnp.zeros((), x.dtype), [(a, b, 0) for a, b in zip(lo, hi,
     strict=True)]), None, None)  # a padded constant is not a uniform fill
# fmt: on


def _d_minmax(t, m):
    return m, t.fma(m, -1.0, 1.0)


def _d_atan2(t, a, b):
    r = t.fma(a, a, t.fma(b, b))
    return t.elem("div", b, r), t.elem("neg", t.elem("div", a, r))


def names(kind: str) -> tuple[str, ...]:
    return tuple(n for n, f in ELEM.items() if f.kind == kind)


#: jaxpr primitive name -> ELEM function (``frontend.from_jaxpr``).
BY_JAX_NAME: dict[str, str] = {j: f.name for f in ELEM.values() for j in f.jax}


def lookup(name: str) -> ElemFunc:
    """The registry entry of ``name``; a clear error for an unknown function."""
    try:
        return ELEM[name]
    except KeyError:
        known = tuple(ELEM)
        raise KeyError(f"unknown ELEM function {name!r}; add it to tpjax/ir/elem_table.py (known: {known})") from None
