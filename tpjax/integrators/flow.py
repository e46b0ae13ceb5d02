"""The flow program z' = J(z) grad H(z): gradients, then the structure's POISSON_J, STOREd at ptr_flow<k>.

Methods that are not kick/drift splittings (implicit midpoint, the rigid-body rotations) are built around
this program; the structure object emits its own POISSON_J instructions.
"""

from __future__ import annotations

from ..frontend.trace import emit_gradient
from ..ir.ops import Op


def schedule_flow(b, tr, regs, const_regs) -> None:
    """Emit f = J(z) grad H(z) for ``tr.structure`` and STORE each part at ptr_flow<k>."""
    names = tr.structure.parts
    grads = [emit_gradient(b, tr, k, regs, const_regs, f"flow: dH/d{n}") for k, n in enumerate(names)]
    b.phase, b.stage = "poisson", "flow"
    flows = tr.structure.emit_flow(b, tr, grads, regs)
    b.phase, b.stage = "integrate", ""
    for k, f in enumerate(flows):
        ref = next(i for i in b.instrs if i.dst == (f,))
        b.emit(Op.STORE, f"ptr_flow{k}", (f,), dtype=ref.dtype, shape=ref.shape, comment=f"d{names[k]}/dt")
