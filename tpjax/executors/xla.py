"""The XLA executor: the integrator's one-step map in a ``lax.scan`` under a chosen adjoint."""

from __future__ import annotations

import jax

from .base import AbstractExecutor, preflight


def for_xla(comp):
    """The program the XLA path runs: without the FSAL carry on GPUs (memory-bound there)."""
    return comp.without_fsal() if jax.default_backend() == "gpu" and comp.carries_force else comp


def resolve_adjoint(adjoint, method) -> str:
    """The adjoint for ``method``: the given one (checked), or the method's default."""
    from ..adjoint import resolve

    return resolve(adjoint, symmetric=method.symmetric, method_name=method.name)


class XlaLoop(AbstractExecutor):
    """Steps through the TP-IR primitives (or the method's own step) in ``lax.scan``; every adjoint."""

    name = "xla"

    def run(self, comp, parts, dt, *, steps, save_every=None, adjoint=None, reanchor=None):
        from .. import adjoint as adj

        preflight(parts, steps, save_every)
        comp = for_xla(comp)
        stepper = comp.method.stepper(comp)
        z0 = stepper.initial(stepper.params, parts)
        how = resolve_adjoint(adjoint, comp.method)
        from .loop_form import unroll_for

        out = adj.solve(stepper.step, z0, dt, stepper.params, steps=steps, save_every=save_every, adjoint=how,
                        reanchor=reanchor, unroll=unroll_for(comp, steps))  # fmt: skip
        zf, saved = (out, None) if save_every is None else out
        stepper.check(zf, dt)
        n = stepper.n_parts
        return tuple(zf[:n]), None if saved is None else tuple(saved[:n])
