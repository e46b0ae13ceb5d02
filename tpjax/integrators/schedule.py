"""Scheduling a kick/drift splitting into TP-IR, and the separability it needs."""

from __future__ import annotations

from ..frontend.trace import emit_gradient
from ..ir.ops import Op


def schedule_stages(b, tr, stages, regs, const_regs) -> None:
    """Emit each stage: backward (dH/dq for a kick, dH/dp for a drift) -> POISSON_J -> SYMP_STEP.

    ``stages``: (stage, is_kick) pairs; a stage has a coefficient ``c`` and a display label (its str)."""
    q, p = regs
    n = len(stages)
    for k, (st, kick) in enumerate(stages, 1):
        label = f"stage {k}/{n} {st}"
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


def check_separable(traced, name: str) -> None:
    """An explicit splitting needs H(q, p) = T(p) + V(q): dH/dq free of p and dH/dp free of q."""
    if traced.depends(0, 1) or traced.depends(1, 0):
        raise ValueError(
            f"method={name!r} is an explicit splitting and needs a separable H(q, p) = T(p) + V(q), "
            "but dH/dq depends on p (found in the jaxpr of H). An explicit method would silently lose "
            "symplecticity; use method='implicit_midpoint' (implicit) or method='tao' (explicit, in a doubled "
            "phase space) for non-separable H"
        )
