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
        zf, saved = self.run_carry(comp, self.start(comp, parts), dt, steps=steps, save_every=save_every,
                                   adjoint=adjoint, reanchor=reanchor)  # fmt: skip
        return zf[: len(parts)], saved

    def stepper(self, comp):
        """The one-step map this executor loops over (of ``for_xla(comp)``)."""
        comp = for_xla(comp)
        return comp.method.stepper(comp)

    def start(self, comp, parts, carry=None) -> tuple:
        """The loop state z0: the state parts, then the carried registers (``carry`` if given, e.g. from a
        previous run's Solution, else their start values: the FSAL prologue force)."""
        stepper = self.stepper(comp)
        if carry is None:
            return tuple(stepper.initial(stepper.params, parts))
        return tuple(parts) + tuple(carry)

    def run_carry(self, comp, z0, dt, *, steps, save_every=None, adjoint=None, reanchor=None, check=True):
        """Run from the full loop state ``z0`` (see ``start``); returns (the full final loop state, saved
        state parts or None)."""
        from .. import adjoint as adj

        stepper = self.stepper(comp)
        n = stepper.n_parts
        preflight(z0[:n], steps, save_every)
        how = resolve_adjoint(adjoint, comp.method)
        from .loop_form import unroll_for

        out = adj.solve(stepper.step, tuple(z0), dt, stepper.params, steps=steps, save_every=save_every,
                        adjoint=how, reanchor=reanchor, unroll=unroll_for(comp, steps))  # fmt: skip
        zf, saved = (out, None) if save_every is None else out
        if check:
            stepper.check(zf, dt)
        return tuple(zf), None if saved is None else tuple(saved[:n])
