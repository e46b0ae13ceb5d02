"""OPAQUE instructions in the tile form: folded when constant, else written as one tensor expression.

1. **all operands constant** (``jnp.eye``'s iotas and comparisons, index arithmetic): the callable runs once
   at code-generation time (``triton_opaque._call``) and its result becomes a constant array (a non-uniform
   one is read from the kernel's table when an instruction needs it);
2. **comparisons, logic and selects** (``lt``, ``and``, ``not``, ``select_n``) and a bool-to-float convert:
   one tensor expression, built by ``triton_opaque._expr`` on whole registers (constant operands folded).

Other OPAQUE ops (gathers with index arrays, ``dot_general``, ...) raise NotImplementedError: the unrolled
form probes them component by component, the tile form does not.
"""

from __future__ import annotations

import numpy as np

from .triton_opaque import _COMPARE, _LOGIC, _call, _expr


def opaque(em, i) -> None:
    func = i.attr("func")
    if len(i.dst) != 1 or i.attr("effect"):
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func}"))
    if all(_constant(em, a) for a in i.args):
        em.set_constant(i.dst[0], _call(em, i, [em.constant_of(a) for a in i.args])[0], i)
    elif func in _COMPARE or func in _LOGIC or func == "not" or (func == "select_n" and len(i.args) == 3):
        _elementwise(em, i, func)
    elif func in ("tp_elem", "convert_element_type") and len(i.args) == 1 and i.args[0] in em.bools:
        _bool_to_float(em, i)
    else:
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func} (tile form)"))


def _constant(em, a) -> bool:
    return not isinstance(a, str) or (a != "dt" and (em.is_const(a) or a in em.arrays))


def _elementwise(em, i, func: str) -> None:
    shape, dst = tuple(i.shape), i.dst[0]
    em.out = shape if shape != () else None
    if shape != ():
        em.dims(shape)
    try:
        expr = _expr(em, func, list(i.args))
    finally:
        em.out = None
    boolean = func != "select_n"
    if isinstance(expr, tuple):  # a constant or a copy of an operand
        (a,) = expr
        if em.is_const(a):
            value = em.consts[a] if isinstance(a, str) else a
            em.set_constant(dst, np.full(shape, value, np.bool_ if boolean else em.np), i)
            return
        em.out = shape if shape != () else None
        copy = em.ref(a)
        em.out = None
        em.written(dst, shape, copy, i, boolean=a in em.bools)
        return
    if func == "select_n" and shape != ():
        expr = f"tl.broadcast_to({expr}, {em.dims(shape)})"  # a select of two literals has the predicate's shape
    em.written(dst, shape, expr, i, boolean=boolean)


def _bool_to_float(em, i) -> None:
    """A convert of a bool register: ``where(m, f(True), f(False))``, f probed on constant masks."""
    (a,) = i.args
    shape = em.shape_of(a)
    if tuple(i.shape) != shape:
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {i.attr('func')} of a mask to shape {i.shape}"))
    ones, zeros = (np.asarray(_call(em, i, [np.full(shape, v)])[0]).reshape(-1) for v in (True, False))
    pattern = np.random.default_rng(5).random(shape) < 0.5
    got = np.asarray(_call(em, i, [pattern])[0])
    if not np.array_equal(got, np.where(pattern, ones.reshape(shape), zeros.reshape(shape))) or (
        ones.size and (np.any(ones != ones[0]) or np.any(zeros != zeros[0]))
    ):
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {i.attr('func')} of a mask (tile form)"))
    dtype = {"f32": "tl.float32", "f64": "tl.float64"}[em.dtype]
    em.out = shape if shape != () else None
    t, f = (em.literal(v[0]) if v.size else "0.0" for v in (ones, zeros))
    m = em.ref(a)
    em.out = None
    em.written(i.dst[0], shape, f"tl.where({m}, {t}, {f}).to({dtype})", i)
