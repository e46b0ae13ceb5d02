"""The TP-IR compiler: trace H, schedule the method's stages, run the passes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .frontend.builder import Builder
from .frontend.trace import STATE_NAMES, STATE_PTRS, Traced, emit_forward, emit_gradient, trace
from .integrators.base import AbstractIntegrator, Kick, Splitting
from .ir.node import Program
from .ir.ops import Op
from .ir.printer import to_text
from .passes import PIPELINE, optimize
from .passes.fsal import prologue as fsal_prologue


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """H compiled for one method and state signature.

    ``step``: the optimised one-step program; ``source``: the same before passes (seed style, with the
    forward energy phase); ``prologue``: the FSAL initial-force program or None; ``energy``: the forward
    phase alone (STORE ptr_E). ``print(compiled)`` shows the optimised listing.
    """

    step: Program
    source: Program
    prologue: Program | None
    energy: Program
    traced: Traced
    method: AbstractIntegrator
    structure: str
    pipeline: tuple = PIPELINE
    precision: object = None  # the tpjax.Precision policy it was compiled with, if any

    @property
    def consts(self) -> list:
        return self.traced.consts

    @property
    def carried(self) -> tuple[str, ...]:
        """Pointers the step both LOADs and STOREs besides the state: the FSAL force, Kahan compensations."""
        state = set(STATE_PTRS[self.structure])
        stored = {p for p, _ in self.step.outputs()}
        return tuple(p for _, p in self.step.inputs() if p in stored and p not in state)

    @property
    def carries_force(self) -> bool:
        return "ptr_force" in self.carried

    def without_fsal(self) -> Compiled:
        """The same program with the force recomputed in every step instead of carried.

        Carrying the force saves one gradient evaluation per step, which pays where arithmetic is the
        cost (CPU, the fused kernel's registers). In a memory-bound XLA loop on a GPU the carry is one
        more array read and written per step: measured 37.5 ms with it vs 20.1 ms without on an H100
        (benchmarks/README.md), so the XLA path on GPUs uses this variant.
        """
        pipeline = tuple((n, f) for n, f in self.pipeline if n != "fsal")
        step = optimize(self.source, pipeline, report=False)
        return dataclasses.replace(self, step=step, prologue=None, pipeline=pipeline)

    def __str__(self) -> str:
        return to_text(self.step)

    __repr__ = __str__


def _meta(H: Callable, method: AbstractIntegrator, structure: str, tr: Traced) -> tuple:
    name = getattr(H, "__name__", type(H).__name__).replace("<", "").replace(">", "")
    return (("H", name), ("method", method.name), ("structure", structure))


def schedule_splitting(b: Builder, tr: Traced, method: Splitting, regs, const_regs) -> None:
    """Emit the stages of a kick/drift splitting: backward -> POISSON_J -> SYMP_STEP per stage."""
    q, p = regs
    n = len(method.stages)
    for k, st in enumerate(method.stages, 1):
        label = f"stage {k}/{n} {st}"
        kick = isinstance(st, Kick)
        g = emit_gradient(b, tr, 0 if kick else 1, regs, const_regs, label)
        b.phase = "poisson"
        ref = next(i for i in reversed(b.instrs) if g in i.dst) if isinstance(g, str) else None
        kind, target, what = ("NEGATE", p, "pdot = -dH/dq") if kick else ("PASS", q, "qdot = +dH/dp")
        f = b.emit(Op.POISSON_J, b.fresh("F"), (g,), (("type", kind),), dtype=ref.dtype if ref else None,
                   shape=ref.shape if ref else None, comment=what)  # fmt: skip
        b.phase = "integrate"
        tgt = next(i for i in b.instrs if i.dst == (target,))
        b.emit(Op.SYMP_STEP, target, (f, "dt"), (("coef", st.c),), dtype=tgt.dtype, shape=tgt.shape,
               comment=f"{'p' if kick else 'q'} += {st.c:g}*dt*{f}")  # fmt: skip


def build_source(H: Callable, tr: Traced, method: AbstractIntegrator) -> Program:
    """The unoptimised program: forward phase, then each stage's backward, Poisson and integrate phases."""
    b = Builder()
    names = STATE_NAMES[tr.structure]
    regs = [b.load("S", ptr, a, nm) for ptr, a, nm in zip(STATE_PTRS[tr.structure], tr.avals, names, strict=True)]
    const_regs = [b.const(c, v.aval) for c, v in zip(tr.consts, tr.jaxpr.jaxpr.constvars, strict=True)]
    emit_forward(b, tr.jaxpr, tr.consts, regs)
    if isinstance(method, Splitting):
        schedule_splitting(b, tr, method, regs, const_regs)
    else:
        method.schedule(b, tr, regs, const_regs)
    b.phase, b.stage = "integrate", ""
    for ptr, r in zip(STATE_PTRS[tr.structure], regs, strict=True):
        ref = next(i for i in b.instrs if i.dst == (r,))
        b.emit(Op.STORE, ptr, (r,), dtype=ref.dtype, shape=ref.shape)
    tr.consts = list(b.consts)  # H's constants, then those of a traced J(z)
    return b.program(_meta(H, method, tr.structure, tr))


def energy_program(tr: Traced) -> Program:
    from .frontend.trace import forward_program

    return forward_program(tr.jaxpr, tr.structure, tr.consts)


def compile_hamiltonian(H, parts, method: AbstractIntegrator, structure: str, *, pipeline=PIPELINE, J=None,
                        precision=None):  # fmt: skip
    tr = trace(H, parts, structure)
    if J is not None:
        import jax

        tr.J = jax.make_jaxpr(J)(*tr.avals)
    source = build_source(H, tr, method)
    if precision is not None:
        from .passes import precision as precision_pass

        pipeline = tuple(pipeline) + (("precision", precision_pass(precision)),)
    step = optimize(source, pipeline)
    pro = fsal_prologue(source) if any(n == "fsal" for n, _ in pipeline) else None
    if pro is not None:
        pro = optimize(pro, tuple((n, f) for n, f in pipeline if n != "fsal"), report=False)
    return Compiled(step, source, pro, energy_program(tr), tr, method, structure, tuple(pipeline), precision)
