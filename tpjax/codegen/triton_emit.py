"""Instruction-by-instruction translation of a TP-IR program into lines of Triton code.

Used by ``triton_source.generate_program``; see that module's docstring for the instruction rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.elem_table import ELEM, LAYOUT_KIND
from ..ir.node import Instr
from ..ir.ops import Op

_TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64"}
_NP_DTYPE = {"f32": np.float32, "f64": np.float64}
_CARRIED = {"ptr_q": "q", "ptr_p": "p", "ptr_force": "force"}
#: largest per-system state dimension d (state shape (d,)) the generator unrolls into registers.
MAX_DIM = 16

#: ELEM functions the emitter computes element by element: the registry's templated ones, ipow and convert.
_ELEMENTWISE = (*(n for n, f in ELEM.items() if f.triton is not None), "ipow", "convert")


class _Emitter:
    """Translates one straight-line program into lines of Triton code (constants folded)."""

    def __init__(self, dtype: str, prefix: str, opaque_msg: str):
        self.dtype = dtype
        self.np = _NP_DTYPE[dtype]
        self.prefix = prefix
        self.consts: dict[str, Any] = {}  # register (or component ``R_k``) -> folded numpy scalar
        self.shapes: dict[str, tuple[int, ...]] = {}  # register -> its per-system shape (() or (d,))
        self.lines: list[str] = []
        self.opaque_msg = opaque_msg

    # operands -------------------------------------------------------------------------------------
    def name(self, reg: str) -> str:
        return self.prefix + reg

    def shape_of(self, a) -> tuple[int, ...]:
        return self.shapes.get(a, ()) if isinstance(a, str) and a != "dt" else ()

    def component(self, a, k: int):
        """Component ``k`` of operand ``a``: ``R_k`` for a (d,) register, ``a`` itself for a scalar
        (numpy broadcasting of () against (d,))."""
        return f"{a}_{k}" if self.shape_of(a) != () else a

    def is_const(self, a) -> bool:
        return not isinstance(a, str) or a in self.consts

    def value(self, a):
        return self.np(a) if not isinstance(a, str) else self.consts[a]

    def lit(self, v) -> str:
        v = float(self.np(v))
        if math.isnan(v):
            return "_NAN"
        if math.isinf(v):
            return "_INF" if v > 0 else "_NINF"
        return repr(v)

    def ref(self, a) -> str:
        if a == "dt":
            return "dt"
        if self.is_const(a):
            return self.lit(self.value(a))
        return self.name(a)

    def tensor(self, a) -> str:
        """``a`` as a [BLOCK] tensor (constants materialised), for loop-carried registers and stores."""
        if a != "dt" and self.is_const(a):
            return f"tl.full([BLOCK], {self.lit(self.value(a))}, {_TL_DTYPE[self.dtype]})"
        return self.ref(a)

    def emit(self, dst: str, expr: str, i: Instr) -> None:
        self.lines.append(f"{self.name(dst)} = {expr}  # [{i.phase}] {_tag(i)}")

    # folding --------------------------------------------------------------------------------------
    def fold(self, i: Instr):
        """The constant result of ``i`` when all operands are constants, else None."""
        if i.op in (Op.LOAD, Op.STORE, Op.SYMP_STEP, Op.OPAQUE) or not all(self.is_const(a) for a in i.args):
            return None
        x = [self.value(a) for a in i.args]
        with np.errstate(all="ignore"):
            if i.op is Op.GRAD_INIT:
                return self.np(i.args[0])
            if i.op is Op.FMA:
                return self.np(self.np(x[0] * x[1]) + x[2])
            if i.op is Op.ACC_GRAD:
                return self.np(x[0] + x[1])
            if i.op is Op.SUM:
                return x[0]
            if i.op is Op.POISSON_J and i.attr("type") in ("PASS", "NEGATE"):
                return x[0] if i.attr("type") == "PASS" else -x[0]
            if i.op is Op.ELEM:
                f = i.attr("func")
                if f in ("broadcast", "reshape"):
                    return x[0]
                e = ELEM.get(f)
                if e is not None and e.kind != LAYOUT_KIND and e.fold is not None:
                    params = {k: v for k, v in i.attrs if k != "func"}
                    return self.np(e.fold(*x, **params))
        return None

    # instructions ---------------------------------------------------------------------------------
    def instr(self, i: Instr) -> None:
        shapes = [i.shape, *(self.shape_of(a) for a in i.args)]
        if i.op is Op.SYMP_STEP:
            shapes.append(self.shape_of(i.dst[0]))
        if any(s != () for s in shapes):
            self._vector(i, shapes)
            return
        self.shapes[i.dst[0]] = ()
        self._scalar(i)

    def _vector(self, i: Instr, shapes: list[tuple[int, ...]]) -> None:
        """``i`` with (d,)-shaped operands or result: unrolled into d scalar instructions on the components
        ``R_0 .. R_{d-1}``; SUM over axis 0 of a (d,) register is a balanced tree of adds."""
        if i.op is Op.ELEM and i.attr("func") in ("slice", "pad") and len(i.shape) == 1 and len(shapes[1]) == 1:
            self._window(i)
            return
        vec = {s for s in shapes if s != ()}
        (d,) = next(iter(vec)) if len(vec) == 1 and len(next(iter(vec))) == 1 else (0,)
        if not 1 <= d <= MAX_DIM or i.op is Op.OPAQUE:
            if i.op is Op.OPAQUE:
                raise NotImplementedError(self.opaque_msg.format(op=_tag(i)))
            raise NotImplementedError(
                f"tpjax Triton codegen handles per-system scalar or vector states (shape () or (d,) with "
                f"1 <= d <= {MAX_DIM}); {_tag(i)} has shape {i.shape} (operands {tuple(shapes[1:])}), so no "
                "fused Triton kernel can be generated and the XLA path (tpjax.integrate) is used."
            )
        if i.dtype not in _TL_DTYPE:
            raise NotImplementedError(f"tpjax Triton codegen: dtype {i.dtype} of {_tag(i)} (f32/f64 only)")
        func = i.attr("func") if i.op is Op.ELEM else None
        if i.op is Op.ELEM and func not in _ELEMENTWISE and func not in ("broadcast", "reshape"):
            raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {func} on shape {i.shape}")
        dst = i.dst[0]
        if i.shape == ():
            if i.op is Op.SUM:
                self._sum(i, d)
            elif func in ("broadcast", "reshape") and d == 1:  # (1,) -> (): component 0
                self._scalar(i.with_(args=(self.component(i.args[0], 0),)))
            else:
                raise NotImplementedError(
                    f"tpjax Triton codegen: {_tag(i)} from a ({d},) operand to a scalar (SUM only)"
                )
            self.shapes[dst] = ()
            return
        if i.op is Op.SUM and tuple(i.attr("axis") or ()) != ():
            raise NotImplementedError(f"tpjax Triton codegen: {_tag(i)} axis={i.attr('axis')} to shape {i.shape}")
        for k in range(d):
            self._scalar(i.with_(dst=(f"{dst}_{k}",), args=tuple(self.component(a, k) for a in i.args), shape=()))
        self.shapes[dst] = i.shape

    def _window(self, i: Instr) -> None:
        """ELEM slice / pad of a (d,) register: register renaming, component by component (pad's new
        components are the constant 0)."""
        (n_out,), src, dst = i.shape, i.args[0], i.dst[0]
        if i.attr("func") == "slice":
            picks = [i.attr("start")[0] + k for k in range(n_out)]
        else:
            lo, (n_in,) = i.attr("lo")[0], self.shape_of(src)
            picks = [k - lo if 0 <= k - lo < n_in else None for k in range(n_out)]
        for k, j in enumerate(picks):
            name = f"{dst}_{k}"
            if j is None:
                self.consts[name] = self.np(0.0)
            elif self.is_const(self.component(src, j)):
                self.consts[name] = self.value(self.component(src, j))
            else:
                self.consts.pop(name, None)
                self.emit(name, self.ref(self.component(src, j)), i)
        self.shapes[dst] = i.shape

    def _sum(self, i: Instr, d: int) -> None:
        """SUM over axis 0 of a (d,) register: a balanced tree of adds of its components (folded when
        all components are constants)."""
        a = i.args[0]
        parts = [self.component(a, k) for k in range(d)]
        dst = i.dst[0]
        if all(self.is_const(x) for x in parts):
            vals = [self.value(x) for x in parts]
            while len(vals) > 1:
                vals = [
                    self.np(vals[j] + vals[j + 1]) if j + 1 < len(vals) else vals[j] for j in range(0, len(vals), 2)
                ]
            self.consts[dst] = vals[0]
            self.lines.append(f"# {_tag(i)} -> constant {self.lit(vals[0])}  [{i.phase}]")
            return
        self.consts.pop(dst, None)
        terms = [self.ref(x) for x in parts]
        while len(terms) > 1:
            terms = [
                f"({terms[j]} + {terms[j + 1]})" if j + 1 < len(terms) else terms[j] for j in range(0, len(terms), 2)
            ]
        expr = terms[0][1:-1] if d > 1 else terms[0]
        self.emit(dst, expr, i)

    def _scalar(self, i: Instr) -> None:
        if i.dtype not in _TL_DTYPE:
            raise NotImplementedError(f"tpjax Triton codegen: dtype {i.dtype} of {_tag(i)} (f32/f64 only)")
        c = self.fold(i)
        if c is not None:
            self.consts[i.dst[0]] = c
            self.lines.append(f"# {_tag(i)} -> constant {self.lit(c)}  [{i.phase}]")
            return
        self.consts.pop(i.dst[0], None)
        op, a = i.op, i.args
        if op is Op.FMA:
            self.emit(i.dst[0], self._fma(*a), i)
        elif op is Op.ELEM:
            self.emit(i.dst[0], self._elem(i), i)
        elif op is Op.SUM:
            self.emit(i.dst[0], self.ref(a[0]), i)  # sum over the axes of a scalar: identity
        elif op is Op.GRAD_INIT:  # unreachable (always folded), kept for completeness
            self.emit(i.dst[0], self.lit(a[0]), i)
        elif op is Op.ACC_GRAD:
            self.emit(i.dst[0], f"{self.ref(a[0])} + {self.ref(a[1])}", i)
        elif op is Op.POISSON_J:
            kind = i.attr("type")
            if kind not in ("PASS", "NEGATE"):
                raise NotImplementedError(f"tpjax Triton codegen: POISSON_J type={kind} (canonical only)")
            fn = "poisson_j_pass" if kind == "PASS" else "poisson_j_negate"
            self.emit(i.dst[0], f"{fn}({self.tensor(a[0])})", i)
        elif op is Op.SYMP_STEP:
            s = i.dst[0]
            self.emit(s, f"symp_step({self.tensor(s)}, {self.tensor(a[0])}, dt, {float(i.attr('coef'))!r})", i)
        elif op is Op.OPAQUE:
            raise NotImplementedError(self.opaque_msg.format(op=_tag(i)))
        else:
            raise NotImplementedError(f"tpjax Triton codegen: no rule for {op.value} ({_tag(i)})")

    def _fma(self, a, b, c) -> str:
        terms = [x for x in (a, b) if not (self.is_const(x) and float(self.value(x)) == 1.0)]
        if len(terms) == 2 and self.is_const(terms[0]) and self.is_const(terms[1]):
            terms = [self.np(self.value(a) * self.value(b))]
        prod = " * ".join(self.ref(x) for x in terms) if terms else "1.0"
        # ``+ 0.0`` is dropped: it only turns a -0.0 product into +0.0.
        if self.is_const(c) and float(self.value(c)) == 0.0 and not math.copysign(1.0, float(self.value(c))) < 0:
            return prod if terms else self.tensor(a)
        return f"{prod} + {self.ref(c)}"

    def _elem(self, i: Instr) -> str:
        f, a = i.attr("func"), i.args
        if f in ("broadcast", "reshape"):
            return self.ref(a[0])  # scalars only (checked by shape): identity
        if f == "convert":
            return f"{self.tensor(a[0])}.to({_TL_DTYPE[self.dtype]})"
        x = self.tensor(a[0])
        if f == "ipow":
            n = int(i.attr("n"))
            if n == 0:
                return f"{x} * 0.0 + 1.0"
            body = " * ".join([f"{x}"] * abs(n))
            return f"({body})" if n > 0 else f"(1.0 / ({body}))"
        e = ELEM.get(f)
        if e is not None and e.triton is not None:
            precise = e.template(self.dtype)
            # libdevice functions take tensors of one dtype: a constant second operand is materialised
            y = (self.tensor(a[1]) if "libdevice." in precise else self.ref(a[1])) if e.arity == 2 else None
            ops = {"x": x, "y": y} if e.arity == 2 else {"x": x}
            precise = precise.format(**ops)
            if e.fast is not None and self.dtype == "f32":
                # FAST_MATH is a constexpr: Triton resolves the branch at compile time.
                return f"({e.fast.format(**ops)} if FAST_MATH else {precise})"
            return precise
        raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {f}")


def _tag(i: Instr) -> str:
    f = i.attr("func") if i.op is Op.ELEM else i.attr("type") if i.op is Op.POISSON_J else None
    return f"{i.op.value} {f}" if f else i.op.value
