"""Stepper: the one-step map an executor loops over, as an integrator hands it out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from ..codegen import reference
from ..passes.carry import carried


@dataclasses.dataclass(frozen=True)
class Stepper:
    """``step(params, z, dt) -> z`` for one step; z = the state parts, then the carried registers.

    ``initial(params, parts)`` builds z0 from the state parts; ``n_parts`` of z are the state;
    ``check(z, dt)`` runs outside jit on the final z (e.g. raises ConvergenceError); ``params`` are the
    differentiable constants (H's parameters first).
    """

    step: Callable
    params: tuple
    initial: Callable
    n_parts: int
    check: Callable = lambda z, dt: None


def program_inputs(comp, parts, consts) -> dict:
    """The pointer -> value map for running one of comp's programs at ``parts``."""
    return dict(zip(comp.structure.ptrs, parts, strict=True)) | {f"ptr_c{k}": c for k, c in enumerate(consts)}


def initial_carry(comp, params, parts) -> tuple:
    """The state parts, then each register the step program declares as carried, at its start value."""
    by_ptr = dict(zip(comp.structure.ptrs, parts, strict=True))
    z = tuple(parts)
    for c in carried(comp.step):
        if c.init == "prologue":
            z += (reference.run(comp.prologue, program_inputs(comp, parts, params))[c.ptr],)
        else:
            z += (jnp.zeros_like(by_ptr[c.like]),)
    return z


def program_stepper(comp) -> Stepper:
    """Run comp's step program (through the TP-IR primitives) as the one-step map."""
    ptrs = comp.structure.ptrs
    loop = ptrs + tuple(c.ptr for c in carried(comp.step))
    n = len(ptrs)

    def step(params, z, dt):
        inputs = program_inputs(comp, z[:n], params) | dict(zip(loop[n:], z[n:], strict=True))
        out = reference.run(comp.step, inputs, dt)
        return tuple(out[p] for p in loop)

    return Stepper(step, tuple(comp.consts), lambda params, parts: initial_carry(comp, params, parts), n)


def flow_function(comp, params):
    """z -> z' = J(z) grad H(z) from comp's flow program (STOREs ptr_flow<k>)."""
    n = len(comp.structure.ptrs)

    def flow(z):
        out = reference.run(comp.step, program_inputs(comp, z, params[: len(comp.consts)]))
        return tuple(out[f"ptr_flow{k}"] for k in range(n))

    return flow


def implicit_stepper(comp, solve, error, max_iter: int) -> Stepper:
    """The Stepper of an implicit method on comp's flow: ``solve(flow, z, dt) -> (z1, info)``; a step whose
    solve did not converge yields NaN, and the eager check raises ``error(dt, max_iter)`` (a ConvergenceError)."""

    def step(params, z, dt):
        z1, info = solve(flow_function(comp, params), tuple(z), dt)
        return tuple(jnp.where(info.converged, a, jnp.nan) for a in z1)

    def check(z, dt) -> None:
        if any(isinstance(a, jax.core.Tracer) for a in z) or isinstance(dt, jax.core.Tracer):
            return
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in z):
            e = error(float(dt), max_iter)
            hint = comp.structure.nan_hint(comp.traced)
            if hint:
                e.args = (f"{e.args[0]} {hint}",)
            raise e

    return Stepper(step, tuple(comp.consts), lambda params, parts: tuple(parts), len(comp.structure.ptrs), check)
