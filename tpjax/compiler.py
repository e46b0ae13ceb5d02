"""The TP-IR compiler: trace H, let the method schedule itself, run the passes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .frontend.builder import Builder
from .frontend.trace import Traced, emit_forward, forward_program, trace
from .integrators.base import AbstractIntegrator
from .ir.node import Program
from .ir.ops import Op
from .ir.printer import to_text
from .passes import PIPELINE, optimize
from .passes.carry import carried
from .passes.fsal import FORCE
from .passes.fsal import prologue as fsal_prologue
from .structures import AbstractStructure, resolve


@dataclasses.dataclass(frozen=True, eq=False)
class Compiled:
    """H compiled for one method, structure and state signature.

    ``step``: the optimised one-step program; ``source``: the same before passes (seed style, with the
    forward energy phase); ``prologue``: the FSAL initial-force program or None; ``energy``: the forward
    phase alone (STORE ptr_E); ``consts``: the values of the step program's C registers (H's constants,
    then those of the structure, e.g. a traced J(z)). ``print(compiled)`` shows the optimised listing.
    """

    step: Program
    source: Program
    prologue: Program | None
    energy: Program
    traced: Traced
    method: AbstractIntegrator
    structure: AbstractStructure
    consts: tuple = ()
    pipeline: tuple = PIPELINE
    precision: object = None  # the tpjax.Precision policy it was compiled with, if any

    @property
    def carried(self) -> tuple[str, ...]:
        """Pointers the step carries from step to step (declared by the passes that made them)."""
        return tuple(c.ptr for c in carried(self.step))

    @property
    def carries_force(self) -> bool:
        return FORCE in self.carried

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


def _meta(H: Callable, method: AbstractIntegrator, structure: AbstractStructure) -> tuple:
    name = getattr(H, "__name__", type(H).__name__).replace("<", "").replace(">", "")
    return (("H", name), ("method", method.name), ("structure", structure.name))


def build_source(H: Callable, tr: Traced, method: AbstractIntegrator) -> tuple[Program, tuple]:
    """The unoptimised program (forward phase, then the method's phases) and its C-register values."""
    b = Builder()
    st = tr.structure
    regs = [b.load("S", ptr, a, nm) for ptr, a, nm in zip(st.ptrs, tr.avals, st.parts, strict=True)]
    const_regs = [b.const(c, v.aval) for c, v in zip(tr.consts, tr.jaxpr.jaxpr.constvars, strict=True)]
    emit_forward(b, tr.jaxpr, tr.consts, regs)
    method.schedule(b, tr, regs, const_regs)
    b.phase, b.stage = "integrate", ""
    for ptr, r in zip(st.ptrs, regs, strict=True):
        ref = next(i for i in b.instrs if i.dst == (r,))
        b.emit(Op.STORE, ptr, (r,), dtype=ref.dtype, shape=ref.shape)
    return b.program(_meta(H, method, st)), tuple(b.consts)


def compile_hamiltonian(H, parts, method: AbstractIntegrator, structure, *, pipeline=PIPELINE, precision=None):
    """Trace ``H`` at ``parts`` for ``structure`` (an object or a name), schedule ``method``, optimise."""
    structure = resolve(structure)
    tr = trace(H, parts, structure)
    source, consts = build_source(H, tr, method)
    if precision is not None:
        from .passes import precision as precision_pass

        pipeline = tuple(pipeline) + (("precision", precision_pass(precision)),)
    step = optimize(source, pipeline)
    pro = fsal_prologue(source) if any(n == "fsal" for n, _ in pipeline) else None
    if pro is not None:
        pro = optimize(pro, tuple((n, f) for n, f in pipeline if n != "fsal"), report=False)
    energy = forward_program(tr.jaxpr, structure, tr.consts)
    return Compiled(step, source, pro, energy, tr, method, structure, consts, tuple(pipeline), precision)
