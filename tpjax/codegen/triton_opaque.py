"""OPAQUE instructions in the generated Triton kernel: folded, written component-wise, or probed.

An OPAQUE instruction is a JAX equation TP-IR has no op for, kept with its callable (``Program.opaque``).
The kernel can still run many of them, in this order of preference:

1. **all operands constant** (``jnp.eye``'s iotas and comparisons, index arithmetic): the callable runs
   once at code-generation time and its result becomes constants;
2. **comparisons, logic and selects** (``lt``, ``and``, ``not``, ``select_n``, a bool-to-float convert):
   written component by component (``x < 6.25``, ``tl.where(m, a, b)``), constant operands folded;
3. **linear layout and contraction ops** (``gather``/``scatter-add`` with constant indices,
   ``transpose``, ``dot_general``, ...): the callable is *probed* on basis vectors to find the exact
   linear (or, for a product of two variable operands, bilinear) map, which is checked on a random input
   and then written as sums of products of components.

Anything else raises NotImplementedError with the instruction's name: the XLA path runs the program.
"""

from __future__ import annotations

import numpy as np

_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_LOGIC = {"and": "&", "or": "|", "xor": "^"}
_LINEAR = ("gather", "scatter-add", "scatter_add", "transpose", "concatenate", "broadcast_in_dim", "reshape",
           "squeeze", "expand_dims", "rev", "copy", "copy_p", "dynamic_slice", "dynamic_update_slice", "pad",
           "slice", "reduce_sum", "cumsum", "add", "sub", "neg", "add_any", "select_n", "convert_element_type",
           "dot_general", "mul")  # fmt: skip
_BILINEAR = ("dot_general", "mul")
#: largest probe (basis evaluations x output elements) tried before giving up on a kernel.
MAX_PROBE = 1 << 24


def opaque(em, i) -> None:
    func = i.attr("func")
    if len(i.dst) != 1 or i.attr("effect"):
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func}"))
    if all(_is_const(em, a) for a in i.args):
        _set_array(em, i.dst[0], _call(em, i, [_array(em, a) for a in i.args])[0], i)
    elif func in _COMPARE or func in _LOGIC or func == "not" or (func == "select_n" and len(i.args) == 3):
        _componentwise(em, i, func)
    elif func in ("tp_elem", "convert_element_type") and len(i.args) == 1 and i.args[0] in em.bools:
        _bool_to_float(em, i)
    elif func in _LINEAR:
        _probe(em, i)
    else:
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func}"))


# ---- constants --------------------------------------------------------------------------------------------
def _is_const(em, a) -> bool:
    if not isinstance(a, str):
        return True
    if a == "dt":
        return False
    return a in em.arrays or all(em.is_const(c) for c in em.comps(a).reshape(-1))


def _array(em, a):
    """The constant value of operand ``a`` (literals stay Python scalars: the callable casts them)."""
    if not isinstance(a, str):
        return a
    if a in em.arrays:
        return em.arrays[a]
    return np.array([em.value(c) for c in em.comps(a).reshape(-1)], em.np).reshape(em.shape_of(a))


def _set_array(em, dst: str, value, i) -> None:
    value = np.asarray(value)
    em.arrays[dst] = value
    em.bools.discard(dst)
    em.shapes[dst] = tuple(value.shape)
    for name, v in zip(em.names(dst, tuple(value.shape)), value.reshape(-1), strict=True):
        em.consts[name] = v if value.dtype.kind in "bi" else em.np(v)
    em.lines.append(f"# OPAQUE {i.attr('func')} -> constant {value.dtype}{list(value.shape)}  [{i.phase}]")


def _call(em, i, args) -> list[np.ndarray]:
    import jax

    with jax.ensure_compile_time_eval():
        out = em.opaque[i.attr("key")](*args)
    return [np.asarray(o) for o in out]


def _written(em, dst: str, shape) -> list[str]:
    em.arrays.pop(dst, None)
    em.shapes[dst] = tuple(shape)
    return em.names(dst, tuple(shape))


# ---- comparisons, logic, selects ----------------------------------------------------------------------------
def _componentwise(em, i, func: str) -> None:
    shape = tuple(i.shape)
    args = [np.broadcast_to(em.comps(a), shape) for a in i.args]
    names = _written(em, i.dst[0], shape)
    is_bool = func != "select_n"
    for k, idx in enumerate(np.ndindex(shape)):
        parts = [a[idx] for a in args]
        expr = _expr(em, func, parts)
        name = names[k]
        if isinstance(expr, tuple):  # a constant or a copy of an operand
            if em.is_const(expr[0]):
                em.consts[name] = em.value(expr[0]) if not is_bool else _bool(em, expr[0])
            else:
                em.consts.pop(name, None)
                em.emit(name, em.ref(expr[0]), i)
        else:
            em.consts.pop(name, None)
            em.emit(name, expr, i)
    (em.bools.add if is_bool else em.bools.discard)(i.dst[0])


def _bool(em, a) -> np.bool_:
    return np.bool_(em.consts[a] if isinstance(a, str) else a)


def _expr(em, func: str, parts: list):
    """The Triton expression of one component, or ``(operand,)`` when it is a constant or a copy."""
    const = [em.is_const(x) for x in parts]
    if func == "select_n":
        pred, a, b = parts
        if const[0]:
            return (b if _bool(em, pred) else a,)
        if em.is_const(a) and em.is_const(b) and em.value(a) == em.value(b):
            return (a,)
        return f"tl.where({em.ref(pred)}, {em.tensor(b)}, {em.ref(a)})"
    if func == "not":
        return (np.bool_(not _bool(em, parts[0])),) if const[0] else f"({em.ref(parts[0])} == 0)"
    if func in _LOGIC:
        a, b = parts
        if all(const):
            return (np.bool_({"&": np.logical_and, "|": np.logical_or, "^": np.logical_xor}[_LOGIC[func]](
                _bool(em, a), _bool(em, b))),)  # fmt: skip
        if const[0]:
            a, b = b, a  # the constant second
        if const[1] or const[0]:
            v = bool(_bool(em, b))
            if func == "and":
                return (a,) if v else (np.bool_(False),)
            if func == "or":
                return (np.bool_(True),) if v else (a,)
            return f"({em.ref(a)} == 0)" if v else (a,)
        return f"({em.ref(a)} {_LOGIC[func]} {em.ref(b)})"
    a, b = parts  # a comparison of floats
    if all(const):
        return (np.bool_(eval(f"em.value(a) {_COMPARE[func]} em.value(b)")),)  # noqa: S307 (fixed operators)
    return f"({em.ref(a)} {_COMPARE[func]} {em.ref(b)})"  # a float64 constant: ``_Emitter.literal``


def _bool_to_float(em, i) -> None:
    """A convert of a bool register: where(m, f(True), f(False)) per component, f probed once."""
    (a,) = i.args
    shape = em.shape_of(a)
    if tuple(i.shape) != shape:
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {i.attr('func')} of a mask to shape {i.shape}"))
    ones, zeros = (_call(em, i, [np.full(shape, v)])[0] for v in (True, False))
    pattern = np.random.default_rng(5).random(shape) < 0.5
    if not np.array_equal(_call(em, i, [pattern])[0], np.where(pattern, ones, zeros)):  # componentwise?
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {i.attr('func')} of a mask"))
    names = _written(em, i.dst[0], tuple(i.shape))
    for k, (m, t, f) in enumerate(zip(em.comps(a).reshape(-1), ones.reshape(-1), zeros.reshape(-1), strict=True)):
        if em.is_const(m):
            em.consts[names[k]] = em.np(t if _bool(em, m) else f)
        else:
            em.consts.pop(names[k], None)
            em.emit(names[k], f"tl.where({em.ref(m)}, {em.literal(t)}, {em.literal(f)}).to({_tl(em)})", i)
    em.bools.discard(i.dst[0])


def _tl(em) -> str:
    return {"f32": "tl.float32", "f64": "tl.float64"}[em.dtype]


# ---- probing linear and bilinear maps ---------------------------------------------------------------------
def _probe(em, i) -> None:
    """Write a linear (or bilinear) OPAQUE op as sums of products of components: its exact coefficients
    come from evaluating the callable on basis vectors, checked on a random input."""
    import jax

    func = i.attr("func")
    var = [k for k, a in enumerate(i.args) if not _is_const(em, a)]
    if any(i.args[k] in em.bools for k in var):
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func} of a data-dependent mask"))
    fixed = [_array(em, a) if k not in var else None for k, a in enumerate(i.args)]
    shapes = [em.shape_of(i.args[k]) for k in var]
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    out_size = int(np.prod(i.shape, dtype=np.int64))
    bilinear = func in _BILINEAR and len(var) == 2
    if (sizes[0] * sizes[1] if bilinear else sum(sizes)) * out_size > MAX_PROBE or len(var) > 2 and bilinear:
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func} (too large to unroll)"))
    fn = em.opaque[i.attr("key")]
    if getattr(fn, "reduced_precision", False):  # asked below full precision: the kernel computes only at full
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func} at a reduced precision"))

    def f(*xs):
        args = list(fixed)
        for k, x, s in zip(var, xs, shapes, strict=True):
            args[k] = x.reshape(s)
        return fn(*args)[0].reshape(-1)

    dtype = em.np
    with jax.ensure_compile_time_eval():
        if bilinear:
            ex, ey = (np.eye(n, dtype=dtype) for n in sizes)
            coef = np.asarray(jax.vmap(lambda x: jax.vmap(lambda y: f(x, y))(ey))(ex))  # (nx, ny, out)
            rx, ry = (np.random.default_rng(7).standard_normal(n).astype(dtype) for n in sizes)
            got, want = np.asarray(f(rx, ry)), np.einsum("ijk,i,j->k", coef, rx, ry)
            offset = np.zeros(out_size, dtype)
        else:
            zeros = [np.zeros(n, dtype) for n in sizes]
            offset = np.asarray(f(*zeros))
            cols = []
            for k, n in enumerate(sizes):
                basis = lambda e, k=k: f(*(e if j == k else z for j, z in enumerate(zeros)))
                cols.append(np.asarray(jax.vmap(basis)(np.eye(n, dtype=dtype))) - offset)  # (n, out)
            coef = np.concatenate(cols)
            r = [np.random.default_rng(7 + k).standard_normal(n).astype(dtype) for k, n in enumerate(sizes)]
            got, want = np.asarray(f(*r)), np.concatenate(r) @ coef + offset
    scale = np.abs(want).max(initial=1.0)
    if not np.allclose(got, want, rtol=0, atol=1e3 * np.finfo(dtype).eps * scale):
        raise NotImplementedError(em.opaque_msg.format(op=f"OPAQUE {func} (not linear in its operands)"))
    parts = [list(em.comps(i.args[k]).reshape(-1)) for k in var]
    names = _written(em, i.dst[0], tuple(i.shape))
    for k in range(out_size):
        if bilinear:
            factors = [((parts[0][a], parts[1][b]), coef[a, b, k]) for a, b in np.argwhere(coef[:, :, k] != 0)]
        else:
            flat = [x for p in parts for x in p]
            factors = [((flat[j],), coef[j, k]) for j in np.flatnonzero(coef[:, k])]
        _write_sum(em, names[k], factors, offset[k], i)
    em.bools.discard(i.dst[0])


def _write_sum(em, name: str, factors: list, offset, i) -> None:
    """``name = offset + sum(c * prod(xs))`` with constant factors folded into the coefficients."""
    total, terms = float(offset), []
    for xs, c in factors:
        c = float(c)
        regs = [x for x in xs if not em.is_const(x)]
        for x in xs:
            if em.is_const(x):
                c *= float(em.value(x))
        if c == 0.0:
            continue
        if not regs:
            total += c
            continue
        prod = " * ".join(em.ref(x) for x in regs)
        terms.append(prod if c == 1.0 else f"-{prod}" if c == -1.0 and len(regs) == 1 else f"{em.lit(c)} * {prod}")
    if not terms:
        em.consts[name] = em.np(total)
        return
    em.consts.pop(name, None)
    if total != 0.0:
        terms.append(em.lit(total))
    em.emit(name, " + ".join(terms), i)
