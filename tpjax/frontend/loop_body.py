"""A JAX loop body as one TP-IR program: what a fused-loop kernel (``codegen.triton_loop``) runs per lane and
step.

``loop_program(body, carry, invariants)`` traces ``body(carry: list, invariants: list) -> carry list`` for
ONE lane (one system) with ``jax.make_jaxpr``, lowers the jaxpr to TP-IR (``frontend.from_jaxpr``: the
TP-IR primitives of a compiled step, and of its ``jax.vjp``, map back to their instructions), and runs the
generic passes (DCE, simplification, CSE, FMA fusion). Pointers: ``ptr_x<k>`` the k-th carried value (LOAD
at the top, STORE at the bottom: the loop-carried registers), ``ptr_v<k>`` the k-th invariant (LOAD only),
``ptr_c<k>`` the jaxpr's own constants (their values are in ``LoopProgram.consts``).

The body is traced, so anything JAX can trace is allowed; what the kernel cannot write stays OPAQUE and the
generator refuses it (the XLA loop runs instead).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..ir.node import Program
from ..ir.ops import Op

#: the generic passes, in order (no FSAL, canonical or Lie-Poisson rewrites: those read integrator structure)
LOOP_PIPELINE = ("dce", "simplify", "cse", "fuse_fma", "simplify", "dce")


@dataclasses.dataclass(frozen=True)
class LoopProgram:
    program: Program
    consts: tuple  # values of ptr_c<k> (concrete numpy arrays)
    carry: tuple  # per-lane jax.ShapeDtypeStruct of each carried value
    invariants: tuple  # per-lane (or shared) jax.ShapeDtypeStruct of each invariant


def loop_program(body, carry, invariants) -> LoopProgram:
    """Trace ``body`` at the per-lane avals ``carry`` and ``invariants`` into an optimised program."""
    from .. import passes
    from .builder import Builder
    from .from_jaxpr import lower_jaxpr

    carry = tuple(jax.ShapeDtypeStruct(tuple(a.shape), a.dtype) for a in carry)
    invariants = tuple(jax.ShapeDtypeStruct(tuple(a.shape), a.dtype) for a in invariants)
    closed, out_shape = jax.make_jaxpr(lambda c, v: list(body(list(c), list(v))), return_shape=True)(
        list(carry), list(invariants)
    )
    outs = jax.tree_util.tree_leaves(out_shape)
    if [(o.shape, o.dtype) for o in outs] != [(a.shape, a.dtype) for a in carry]:
        raise TypeError(f"loop body must return the carry's shapes and dtypes {carry}, got {outs}")
    for c in closed.consts:
        if isinstance(c, jax.core.Tracer):
            raise NotImplementedError("tpjax fused loop: the body closes over a traced value")
    b = Builder()
    regs = [b.load("S", f"ptr_x{k}", a) for k, a in enumerate(carry)]
    regs += [b.load("S", f"ptr_v{k}", a) for k, a in enumerate(invariants)]
    results = lower_jaxpr(b, closed.jaxpr, list(closed.consts), regs)
    b.phase = "integrate"
    for k, (r, a) in enumerate(zip(results, carry, strict=True)):
        if not isinstance(r, str):  # a literal result: a register holding it
            r = b.emit(Op.GRAD_INIT, b.fresh("T"), (r,), aval=a)
        b.emit(Op.STORE, f"ptr_x{k}", (r,), aval=a)
    prog = b.program()
    table = dict(passes.PIPELINE)
    prog = passes.optimize(prog, tuple((n, table[n]) for n in LOOP_PIPELINE), report=False)
    return LoopProgram(prog, tuple(np.asarray(c) for c in b.consts), carry, invariants)
