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
from . import triton_layout, triton_opaque

_TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64"}
_NP_DTYPE = {"f32": np.float32, "f64": np.float64}
_CARRIED = {"ptr_q": "q", "ptr_p": "p", "ptr_force": "force"}
#: largest per-system array (elements) the generator unrolls into registers.
MAX_COMPONENTS = 4096

#: ELEM functions the emitter computes element by element: the registry's templated ones, ipow and convert.
_ELEMENTWISE = (*(n for n, f in ELEM.items() if f.triton is not None), "ipow", "convert")


class _Emitter:
    """Translates one straight-line program into lines of Triton code (constants folded)."""

    def __init__(self, dtype: str, prefix: str, opaque_msg: str, opaque=()):
        self.dtype = dtype
        self.opaque = opaque  # the program's OPAQUE callables (Program.opaque), for folding and probing
        self.arrays: dict[str, np.ndarray] = {}  # register -> its constant value, kept whole (any dtype)
        self.bools: set[str] = set()  # registers holding comparison results (Triton int1)
        self.np = _NP_DTYPE[dtype]
        self.prefix = prefix
        self.consts: dict[str, Any] = {}  # register (or component ``R_k``) -> folded numpy scalar
        self.shapes: dict[str, tuple[int, ...]] = {}  # register -> its per-system shape (() or (d,))
        self.lines: list[str] = []
        self.opaque_msg = opaque_msg
        #: "bounded": float32 sin/cos by ``kernels.trig`` (valid for |x| <= TRIG_BOUND), each lane's largest
        #: |argument| kept in ``trig_amax`` for the kernel's redo test (``triton_source``); "libdevice": tl.sin.
        self.trig = "libdevice"

    # operands -------------------------------------------------------------------------------------
    def name(self, reg: str) -> str:
        return self.prefix + reg

    def shape_of(self, a) -> tuple[int, ...]:
        return self.shapes.get(a, ()) if isinstance(a, str) and a != "dt" else ()

    def component(self, a, k: int):
        """Component ``k`` (row-major flat index) of operand ``a``: ``R_k`` for an array register, ``a``
        itself for a scalar (numpy broadcasting of () against any shape)."""
        return f"{a}_{k}" if self.shape_of(a) != () else a

    def names(self, reg: str, shape: tuple[int, ...]) -> list[str]:
        """The component names of ``reg`` with per-system shape ``shape`` (``reg`` itself for a scalar)."""
        return [f"{reg}_{k}" for k in range(int(np.prod(shape, dtype=np.int64)))] if shape != () else [reg]

    def comps(self, a) -> np.ndarray:
        """Operand ``a`` as an object array of its per-system shape holding its components' operands."""
        shape = self.shape_of(a)
        out = np.empty(shape, object)
        out.reshape(-1)[:] = self.names(a, shape) if isinstance(a, str) and a != "dt" else [a]
        return out

    def assign(self, dst: str, shape: tuple[int, ...], parts, i: Instr) -> None:
        """Set ``dst`` (shape ``shape``) to ``parts`` (component operands, row-major): constants are
        recorded, registers copied."""
        for name, part in zip(self.names(dst, shape), parts, strict=True):
            if self.is_const(part):
                self.consts[name] = self.value(part)
            else:
                self.consts.pop(name, None)
                self.emit(name, self.ref(part), i)
        self.shapes[dst] = shape

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
            return self.literal(self.value(a))
        return self.name(a)

    def literal(self, v) -> str:
        """A constant operand. Triton 3.6 rounds a Python float to float32 where it meets a float64 tensor in
        a comparison, ``tl.maximum`` / ``tl.minimum`` or ``tl.where`` of two literals (``x < 2.5600000000000005``
        compares with 2.5599999428): in a float64 kernel a value float32 cannot hold is a float64 tensor."""
        text = self.lit(v)
        if self.dtype == "f64" and text.lstrip("-")[0].isdigit() and float(np.float32(v)) != float(v):
            return f"tl.full({self.literal_shape()}, {text}, tl.float64)"
        return text

    def literal_shape(self) -> str:
        """The shape of a materialised constant operand: one that broadcasts against every operand."""
        return "[BLOCK]"

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
        if i.op is Op.OPAQUE:
            triton_opaque.opaque(self, i)
            return
        shapes = [i.shape, *(self.shape_of(a) for a in i.args)]
        if i.op is Op.SYMP_STEP:
            shapes.append(self.shape_of(i.dst[0]))
        if any(s != () for s in shapes):
            self._vector(i, shapes)
            return
        self.shapes[i.dst[0]] = ()
        self._scalar(i)

    def _vector(self, i: Instr, shapes: list[tuple[int, ...]]) -> None:
        """``i`` on per-system arrays: unrolled into one scalar instruction per component (components are
        named ``R_k`` by row-major flat index k); layout ops (broadcast, reshape, slice, pad) rename
        components, SUM over axes is a balanced tree of adds (``triton_layout``)."""
        too_big = [s for s in shapes if int(np.prod(s, dtype=np.int64)) > MAX_COMPONENTS]
        if too_big:
            raise NotImplementedError(
                f"tpjax Triton codegen unrolls per-system arrays of up to {MAX_COMPONENTS} elements into "
                f"registers; {_tag(i)} has shape {i.shape} (operands {tuple(shapes[1:])}), so no fused Triton "
                "kernel can be generated and the XLA path (tpjax.integrate) is used."
            )
        if i.dtype not in _TL_DTYPE:
            raise NotImplementedError(f"tpjax Triton codegen: dtype {i.dtype} of {_tag(i)} (f32/f64 only)")
        func = i.attr("func") if i.op is Op.ELEM else None
        if func in triton_layout.LAYOUT:
            triton_layout.layout(self, i)
            return
        if i.op is Op.SUM:
            triton_layout.reduce_sum(self, i)
            return
        if i.op is Op.ELEM and func not in _ELEMENTWISE:
            raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {func} on shape {i.shape}")
        dst = i.dst[0]
        out_shape = self.shape_of(dst) if i.op is Op.SYMP_STEP else i.shape
        try:
            args = [np.broadcast_to(self.comps(a), out_shape) for a in i.args]
        except ValueError:
            raise NotImplementedError(
                f"tpjax Triton codegen: {_tag(i)} of shape {i.shape} with operands {tuple(shapes[1:])}"
            ) from None
        names = self.names(dst, out_shape)
        for k, idx in enumerate(np.ndindex(out_shape)):
            self._scalar(i.with_(dst=(names[k],), args=tuple(a[idx] for a in args), shape=()))
        self.shapes[dst] = out_shape

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
            if e.bounded is not None and self.dtype == "f32" and self.trig == "bounded":
                self.lines.append(f"trig_amax = trig_amax if FAST_MATH else track_range(trig_amax, {x})")
                precise = e.bounded.format(**ops)
            if e.fast is not None and self.dtype == "f32":
                # FAST_MATH is a constexpr: Triton resolves the branch at compile time.
                return f"({e.fast.format(**ops)} if FAST_MATH else {precise})"
            return precise
        raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {f}")


def _tag(i: Instr) -> str:
    f = i.attr("func") if i.op is Op.ELEM else i.attr("type") if i.op is Op.POISSON_J else None
    return f"{i.op.value} {f}" if f else i.op.value
