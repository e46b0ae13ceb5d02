"""Triton code generation: one fused kernel that runs all steps of an ensemble in registers.

``generate(comp)`` turns a compiled Hamiltonian (``tpjax.compile(H, (q, p), method=...)`` with scalar q, p)
into the Python source of a ``@triton.jit`` kernel. Each program loads ``BLOCK`` systems, computes the
initial force once (the FSAL prologue, inlined), then loops ``for _ in range(n_steps)`` over the step
program's instructions with q, p and the carried force in registers (one force evaluation per step: the
trailing and leading half-kicks share it), and stores q, p once. ``fused_integrate`` launches it through
``tpjax._compat.triton_call``.

Kernel signature (jax-triton passes inputs, then scalars, then outputs; constexprs by name)::

    fused_step_kernel(q_ptr, p_ptr, dt_ptr, [c0_ptr, ...], N, n_steps, out_q_ptr, out_p_ptr,
                      BLOCK: tl.constexpr, FAST_MATH: tl.constexpr)

``dt`` (and scalar parameters of H, ``c*_ptr``) are run-time operands loaded once per program; ``n_steps``
is a run-time int, so neither a new dt nor a new step count recompiles. ``FAST_MATH`` (float32 only)
replaces sin/cos/exp with ``sin.approx.f32`` / ``cos.approx.f32`` / ``ex2.approx.f32``.

Saving variant (``generate(comp, save=True)``; a separate kernel text, so the plain kernel has no extra
operands or stores)::

    fused_step_kernel(q_ptr, p_ptr, dt_ptr, [c0_ptr, ...], N, n_saves, save_every, out_q_ptr, out_p_ptr,
                      save_q_ptr, save_p_ptr, BLOCK: tl.constexpr, FAST_MATH: tl.constexpr)

runs ``for _ in range(n_saves): for _ in range(save_every): <step>`` and after each outer iteration stores
q, p into row k of the (n_saves, N) arrays ``save_q``/``save_p`` (row k = the state after
(k + 1) * save_every steps); the final q, p are also stored to ``out_q``/``out_p``. q, p and the FSAL force
stay in registers across saves. ``n_saves`` and ``save_every`` are run-time ints rather than constexprs,
like ``n_steps``: a new saving cadence or run length is not a new PTX compile (jax-triton's usual integer
specialisations aside, e.g. an int equal to 1 becomes a constexpr), while a constexpr would at most let the
compiler unroll an inner loop whose body is already a full step. Row k is addressed as ``offs + k * N`` in
int64 (an offset carried in registers and advanced by N per save), so n_saves * N may exceed 2**31.

Instruction rules: FMA -> ``a*b + c`` (``+ 0.0`` and ``* 1.0`` dropped; Triton contracts to one fma);
ELEM -> ``libdevice``/``tl`` functions; SUM over a scalar, broadcast/reshape of scalars -> identity;
GRAD_INIT -> a constant; ACC_GRAD -> add; POISSON_J PASS/NEGATE -> ``kernels.poisson_j`` device functions;
SYMP_STEP -> ``kernels.symp_step.symp_step``; LOAD/STORE of ptr_q/ptr_p/ptr_force -> the loop-carried
registers. Instructions whose operands are all constants are folded here (in the program's dtype).
OPAQUE instructions have no Triton form: ``generate`` raises NotImplementedError (the XLA path is used).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.node import Instr, Program
from ..ir.ops import Op

#: elements (systems) per program and warps per program used by ``fused_integrate``.
BLOCK = 256
NUM_WARPS = 4
KERNEL_NAME = "fused_step_kernel"

_TL_DTYPE = {"f32": "tl.float32", "f64": "tl.float64"}
_NP_DTYPE = {"f32": np.float32, "f64": np.float64}
_CARRIED = {"ptr_q": "q", "ptr_p": "p", "ptr_force": "force"}

#: precise unary ELEM functions -> expression template ({x}); libdevice is the CUDA math library.
_UNARY_PRECISE = {
    "sin": "tl.sin({x})", "cos": "tl.cos({x})", "tan": "libdevice.tan({x})",
    "exp": "libdevice.exp({x})", "log": "libdevice.log({x})", "sqrt": "tl.sqrt_rn({x})",
    "rsqrt": "libdevice.rsqrt({x})", "sq": "({x} * {x})", "neg": "({x} * -1.0)",
    "recip": "(1.0 / {x})", "tanh": "libdevice.tanh({x})", "abs": "tl.abs({x})",
    "sign": "tl.where({x} > 0.0, 1.0, tl.where({x} < 0.0, -1.0, {x} * 0.0))",
    "log1p": "libdevice.log1p({x})", "expm1": "libdevice.expm1({x})",
    "logistic": "(1.0 / (1.0 + libdevice.exp({x} * -1.0)))",
}  # fmt: skip
#: float32 fast-math replacements (PTX approximate instructions, through inline asm).
_UNARY_FAST = {"sin": "_sin_approx({x})", "cos": "_cos_approx({x})", "exp": "_exp_approx({x})"}
_BINARY = {
    "div": "({x} / {y})", "pow": "libdevice.pow({x}, {y})", "max": "tl.maximum({x}, {y})",
    "min": "tl.minimum({x}, {y})", "atan2": "libdevice.atan2({x}, {y})",
    "ge": "tl.where({x} >= {y}, 1.0, 0.0)",
}  # fmt: skip
#: numpy versions for constant folding.
_NP_UNARY = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x), "sq": lambda x: x * x, "neg": np.negative, "recip": lambda x: 1 / x,
    "tanh": np.tanh, "abs": np.abs, "sign": np.sign, "log1p": np.log1p, "expm1": np.expm1,
    "logistic": lambda x: 1 / (1 + np.exp(-x)),
}  # fmt: skip
_NP_BINARY = {
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "atan2": np.arctan2,
    "ge": lambda x, y: x >= y,
}

_HEADER = """\
# Generated by tpjax.codegen.triton from TP-IR. Do not edit.
# {title}
import triton
import triton.language as tl
from triton.language.extra import libdevice

try:
    from tpjax.kernels.poisson_j import poisson_j_negate, poisson_j_pass
    from tpjax.kernels.symp_step import symp_step
except ImportError:
    from kernels.poisson_j import poisson_j_negate, poisson_j_pass
    from kernels.symp_step import symp_step

_INF = tl.constexpr(float("inf"))
_NINF = tl.constexpr(float("-inf"))
_NAN = tl.constexpr(float("nan"))


@triton.jit
def _sin_approx(x):
    return tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def _cos_approx(x):
    return tl.inline_asm_elementwise("cos.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                     pack=1)


@triton.jit
def _exp_approx(x):
    return tl.inline_asm_elementwise("ex2.approx.f32 $0, $1;", "=r,r", [x * 1.4426950408889634],
                                     dtype=tl.float32, is_pure=True, pack=1)

"""


class _Emitter:
    """Translates one straight-line program into lines of Triton code (constants folded)."""

    def __init__(self, dtype: str, prefix: str, opaque_msg: str):
        self.dtype = dtype
        self.np = _NP_DTYPE[dtype]
        self.prefix = prefix
        self.consts: dict[str, Any] = {}  # register -> folded numpy scalar
        self.lines: list[str] = []
        self.opaque_msg = opaque_msg

    # operands -------------------------------------------------------------------------------------
    def name(self, reg: str) -> str:
        return self.prefix + reg

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
                if f == "ipow":
                    return self.np(x[0] ** int(i.attr("n")))
                if f in _NP_UNARY:
                    return self.np(_NP_UNARY[f](x[0]))
                if f in _NP_BINARY:
                    return self.np(_NP_BINARY[f](x[0], x[1]))
        return None

    # instructions ---------------------------------------------------------------------------------
    def instr(self, i: Instr) -> None:
        if i.shape != ():
            raise NotImplementedError(
                f"tpjax Triton codegen handles per-system scalar state only; {_tag(i)} has shape {i.shape}. "
                "Compile H for one system (scalar q, p) and pass the ensemble as flat arrays."
            )
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
        if f in _UNARY_PRECISE:
            precise = _UNARY_PRECISE[f].format(x=x)
            if f in _UNARY_FAST and self.dtype == "f32":
                # FAST_MATH is a constexpr: Triton resolves the branch at compile time.
                return f"({_UNARY_FAST[f].format(x=x)} if FAST_MATH else {precise})"
            return precise
        if f in _BINARY:
            return _BINARY[f].format(x=x, y=self.ref(a[1]))
        raise NotImplementedError(f"tpjax Triton codegen: no rule for ELEM {f}")


def _tag(i: Instr) -> str:
    f = i.attr("func") if i.op is Op.ELEM else i.attr("type") if i.op is Op.POISSON_J else None
    return f"{i.op.value} {f}" if f else i.op.value


_OPAQUE_MSG = (
    "tpjax Triton codegen: the step program contains {op}, an operation TP-IR lacks (run by XLA as traced "
    "from H); no fused Triton kernel can be generated, so the XLA path (tpjax.integrate) is used."
)


def _force_slice(step: Program) -> Program | None:
    """The initial-force program derived from ``step`` alone (the backward slice of the stored force)."""
    out = dict(step.outputs())
    if "ptr_force" not in out:
        return None
    need, keep = {out["ptr_force"]}, []
    for i in reversed(step.instrs):
        if i.op is Op.STORE or not need.intersection(i.dst):
            continue
        if i.op is Op.SYMP_STEP:
            continue  # before the step: the state as loaded
        if i.op is Op.LOAD and i.args[0] == "ptr_force":
            return None
        keep.append(i)
        need.update(i.regs_read)
    keep.reverse()
    store = Instr(Op.STORE, ("ptr_force",), (out["ptr_force"],), dtype=keep[-1].dtype, phase="integrate")
    return step.with_instrs([*keep, store])


def _check_tpir(prog: Program) -> None:
    for i in prog.instrs:
        if i.op is Op.OPAQUE:
            raise NotImplementedError(_OPAQUE_MSG.format(op=f"OPAQUE {i.attr('key', '')}".strip()))


def generate_program(step: Program, prologue: Program | None = None, consts: int = 0, save: bool = False) -> str:
    """Kernel source for the step program ``step`` (and FSAL ``prologue``; derived when None); with
    ``save``, the saving variant (see the module docstring)."""
    _check_tpir(step)
    if prologue is not None:
        _check_tpir(prologue)
    loads = [ptr for _, ptr in step.inputs()]
    stores = [ptr for ptr, _ in step.outputs()]
    if "ptr_q" not in loads or "ptr_p" not in loads:
        raise NotImplementedError("tpjax Triton codegen: canonical (q, p) programs only")
    dtypes = {i.dtype for i in step.instrs}
    if len(dtypes) != 1:
        raise NotImplementedError(f"tpjax Triton codegen: mixed dtypes {sorted(dtypes)}")
    (dtype,) = dtypes
    carries_force = "ptr_force" in loads
    if carries_force and prologue is None:
        prologue = _force_slice(step)
        if prologue is None:
            raise NotImplementedError("tpjax Triton codegen: cannot derive the initial-force program")
    cptrs = sorted({p for p in loads if p.startswith("ptr_c")}, key=lambda s: int(s[5:]))
    ncon = max(consts, len(cptrs))
    cargs = "".join(f"c{k}_ptr, " for k in range(ncon))
    meta = dict(step.meta)
    title = " ".join(f"{k}={v}" for k, v in meta.items()) + f" dtype={dtype}"

    if save:
        body = [
            f"def {KERNEL_NAME}(q_ptr, p_ptr, dt_ptr, {cargs}N, n_saves, save_every, out_q_ptr, out_p_ptr,",
            "                      save_q_ptr, save_p_ptr, BLOCK: tl.constexpr, FAST_MATH: tl.constexpr):",
        ]
    else:
        body = [
            f"def {KERNEL_NAME}(q_ptr, p_ptr, dt_ptr, {cargs}N, n_steps, out_q_ptr, out_p_ptr,",
            "                      BLOCK: tl.constexpr, FAST_MATH: tl.constexpr):",
        ]
    ind = "    "
    pre = [
        "offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "mask = offs < N",
        "dt = tl.load(dt_ptr)",
        *(f"c{k} = tl.load(c{k}_ptr)" for k in range(ncon)),
        "q = tl.load(q_ptr + offs, mask=mask, other=0.0)",
        "p = tl.load(p_ptr + offs, mask=mask, other=0.0)",
    ]
    body += [ind + ln for ln in pre]

    def block(prog: Program, prefix: str, loop: bool) -> list[str]:
        em = _Emitter(dtype, prefix, _OPAQUE_MSG)
        out = []
        for i in prog.instrs:
            if i.op is Op.LOAD:
                ptr = i.args[0]
                src = _CARRIED.get(ptr) or (f"c{ptr[5:]}" if ptr.startswith("ptr_c") else None)
                if src is None:
                    raise NotImplementedError(f"tpjax Triton codegen: LOAD of {ptr}")
                em.consts.pop(i.dst[0], None)
                em.lines.append(f"{em.name(i.dst[0])} = {src}  # [{i.phase}] LOAD {ptr}")
            elif i.op is Op.STORE:
                ptr = i.dst[0]
                if ptr not in _CARRIED:
                    raise NotImplementedError(f"tpjax Triton codegen: STORE to {ptr}")
                em.lines.append(f"{_CARRIED[ptr]} = {em.tensor(i.args[0])}  # [{i.phase}] STORE {ptr}")
            else:
                em.instr(i)
        out += em.lines
        return out

    if carries_force:
        body.append(ind + "# ---- prologue: initial force (computed once) ----")
        body += [ind + ln for ln in block(prologue, "i_", False)]
    body.append(ind + "# ---- time loop: one step per iteration, state and force in registers ----")
    if save:
        body += [
            ind + "srow = offs  # int64 offset of this program's systems in the current saved row",
            ind + "for _ in range(n_saves):",
            ind * 2 + "for _ in range(save_every):",
        ]
        body += [ind * 3 + ln for ln in block(step, "", True)]
        body += [
            ind * 2 + "# ---- end of time loop ----",
            ind * 2 + "tl.store(save_q_ptr + srow, q, mask=mask)",
            ind * 2 + "tl.store(save_p_ptr + srow, p, mask=mask)",
            ind * 2 + "srow += N",
        ]
    else:
        body.append(ind + "for _ in range(n_steps):")
        body += [ind * 2 + ln for ln in block(step, "", True)]
        body.append(ind + "# ---- end of time loop ----")
    if not {"ptr_q", "ptr_p"} <= set(stores):
        raise NotImplementedError("tpjax Triton codegen: the step must store ptr_q and ptr_p")
    body += [
        ind + "tl.store(out_q_ptr + offs, q, mask=mask)",
        ind + "tl.store(out_p_ptr + offs, p, mask=mask)",
    ]
    return _HEADER.format(title=title) + "\n@triton.jit\n" + "\n".join(body) + "\n"


def generate(comp, save: bool = False) -> str:
    """Python source of the fused ``@triton.jit`` kernel for ``comp`` (a ``tpjax.compile`` result); with
    ``save``, the variant that also stores the state every ``save_every`` steps.

    Raises NotImplementedError when the step program is not fully TP-IR (an OPAQUE op: the XLA path is
    used), when the per-system state is not scalar, or for non-canonical structures.
    """
    if not comp.step.fully_tpir:
        _check_tpir(comp.step)
    if getattr(comp, "structure", "canonical") != "canonical":
        raise NotImplementedError(f"tpjax Triton codegen: structure {comp.structure!r} (canonical only)")
    for k, c in enumerate(comp.consts):
        if np.shape(c) != ():
            raise NotImplementedError(
                f"tpjax Triton codegen: parameter c{k} of H has shape {np.shape(c)}; scalar parameters only"
            )
    return generate_program(comp.step, comp.prologue, len(comp.consts), save=save)


# ---- loading generated source ---------------------------------------------------------------------------
