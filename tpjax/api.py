"""Public API: integrate, trajectory, compile. Glue only: validation, compilation, the time loop."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import _validate as check
from ._backend import use_triton
from .adjoint import resolve as adj_resolve
from .codegen import reference
from .compiler import Compiled, compile_hamiltonian
from .frontend.trace import STATE_PTRS
from .solution import Solution, casimirs


def _parts(state, structure: str) -> tuple:
    if structure == "canonical":
        return check.canonical_state(state)
    if structure == "so3":
        return (check.so3_state(state),)
    if structure == "poisson":
        return (check.poisson_state(state),)
    return check.se3_state(state)


DEFAULT_METHOD = {"canonical": "leapfrog", "so3": "implicit_midpoint", "se3": "implicit_midpoint",
                  "poisson": "implicit_midpoint"}  # fmt: skip


def compile(H: Callable, state, *, method=None, structure="canonical", precision=None) -> Compiled:  # noqa: A001
    """Compile ``H`` to TP-IR for ``state``'s shapes and dtypes; ``print()`` the result for the listing.

    Returns a :class:`Compiled` with the optimised ``step`` program, the seed-style ``source`` (forward,
    backward, Poisson and integrate phases before passes), the FSAL ``prologue`` and the ``energy`` program.
    """
    if not callable(H):
        raise TypeError(f"H must be a callable H(q, p) -> scalar, got {type(H).__name__}")
    J = structure if callable(structure) else None
    structure = check.structure(structure)
    integ = check.method(DEFAULT_METHOD[structure] if method is None else method, structure)
    parts = _parts(state, structure)
    if J is not None:
        check.skew(J, parts[0])
    if precision is not None:
        from .precision import Precision

        if not isinstance(precision, Precision):
            raise TypeError(f"precision must be a tpjax.Precision, got {type(precision).__name__}")
        precision.check()
        if jnp.dtype(parts[0].dtype).name != precision.step:
            raise ValueError(f"precision.step={precision.step!r} but the state is {parts[0].dtype}; cast the "
                             "state to the step dtype")  # fmt: skip
    comp = compile_hamiltonian(H, parts, integ, structure, J=J, precision=precision)
    check.energy_aval(comp.traced)
    if structure == "canonical":
        check.separable(comp.traced, integ)
    return comp


def _inputs(comp: Compiled, parts, consts) -> dict:
    ptrs = STATE_PTRS[comp.structure]
    return dict(zip(ptrs, parts, strict=True)) | {f"ptr_c{k}": c for k, c in enumerate(consts)}


def _stepper(comp: Compiled):
    """(step, params): step(params, z, dt) -> z for one step; z = state parts (+ the FSAL force)."""
    from .integrators.lie import ImplicitMidpoint, RigidBodySplitting

    ptrs = STATE_PTRS[comp.structure]
    n = len(ptrs)
    params = tuple(comp.consts)

    def flow(params, z):
        out = reference.run(comp.step, _inputs(comp, z, params[: len(comp.consts)]))
        return tuple(out[f"ptr_flow{k}"] for k in range(n))

    if isinstance(comp.method, ImplicitMidpoint):
        from .integrators.implicit import implicit_midpoint_step

        m = comp.method

        def step(params, z, dt):
            z1, info = implicit_midpoint_step(lambda z: flow(params, z), z, dt, tol=m.tol, max_iter=m.max_iter,
                                              solver=m.solver)  # fmt: skip
            return tuple(jnp.where(info.converged, a, jnp.nan) for a in z1)

        return step, params
    if isinstance(comp.method, RigidBodySplitting):
        from .integrators import rigid_body as rb
        from .integrators import rigid_body_compensated as rbc

        consts = comp.consts
        energy = lambda L: reference.run(comp.energy, _inputs(comp, (L,), consts))["ptr_E"]
        inertia = rb.inertia_from_hamiltonian(energy, comp.traced.avals[0].dtype)
        if _compensated(comp):  # z = (L, e): Kahan/TwoSum-compensated rotations
            f = rbc.rigid_body_order4_compensated if comp.method.order == 4 else rbc.rigid_body_strang_compensated
            return (lambda params, z, dt: f(z[0], z[1], dt, params[-1])), params + (inertia,)
        f = rb.rigid_body_order4 if comp.method.order == 4 else rb.rigid_body_strang
        return (lambda params, z, dt: (f(z[0], dt, params[-1]),)), params + (inertia,)

    def step(params, z, dt):
        inputs = _inputs(comp, z[:n], params)
        inputs |= dict(zip(comp.carried, z[n:], strict=True))
        out = reference.run(comp.step, inputs, dt)
        return tuple(out[p] for p in ptrs + comp.carried)

    return step, params


def _compensated(comp: Compiled) -> bool:
    return comp.precision is not None and comp.precision.compensated


def _check_converged(comp: Compiled, z, dt) -> None:
    from .integrators.lie import ImplicitMidpoint

    if not isinstance(comp.method, ImplicitMidpoint) or any(isinstance(a, jax.core.Tracer) for a in z):
        return
    if not all(bool(jnp.all(jnp.isfinite(a))) for a in z):
        from .integrators.implicit import ConvergenceError

        raise ConvergenceError(float(dt), comp.method.max_iter)


def _initial(comp: Compiled, parts, consts) -> tuple:
    """The loop state: the state parts, then each carried register (FSAL force, Kahan compensations)."""
    from .integrators.lie import RigidBodySplitting

    by_ptr = dict(zip(STATE_PTRS[comp.structure], parts, strict=True))
    z = tuple(parts)
    if isinstance(comp.method, RigidBodySplitting) and _compensated(comp):
        return z + (jnp.zeros_like(parts[0]),)  # the compensation of L
    for ptr in comp.carried:
        if ptr == "ptr_force":
            z = z + (reference.run(comp.prologue, _inputs(comp, parts, consts))["ptr_force"],)
        elif ptr.endswith("_comp"):  # Kahan compensation of a state part starts at zero
            z = z + (jnp.zeros_like(by_ptr[ptr[: -len("_comp")]]),)
        else:
            raise ValueError(f"TP-IR program carries {ptr!r}, which tpjax cannot initialise")
    return z


def _solve(step, z0, dt, params, steps: int, save_every: int | None, adjoint: str, reanchor=None):
    from . import adjoint as adj

    return adj.solve(step, z0, dt, params, steps=steps, save_every=save_every, adjoint=adjoint, reanchor=reanchor)


def _for_xla(comp: Compiled) -> Compiled:
    """The program the XLA path runs: without the FSAL carry on GPUs (memory-bound there)."""
    return comp.without_fsal() if jax.default_backend() == "gpu" and "ptr_force" in comp.carried else comp


def _prepare(H, state, dt, steps, method, structure, precision=None):
    comp = compile(H, state, method=method, structure=structure, precision=precision)
    parts = _parts(state, comp.structure)
    check.metal_dtype(parts)
    steps = check.steps(steps)
    dt = check.dt(dt, parts[0].dtype)
    return comp, parts, steps, dt


def _pack(parts, state, structure):
    if structure in ("canonical", "se3"):
        return type(state)(parts) if isinstance(state, tuple) else list(parts)
    return parts[0]


def integrate(H: Callable, state, *, dt, steps: int, method=None, structure="canonical",
              adjoint: str | None = None, reanchor: int | None = None, backend: str = "auto",
              fast_math: bool = False, precision=None):  # fmt: skip
    """Integrate Hamilton's equations of ``H`` from ``state`` for ``steps`` steps of size ``dt``.

    Properties: symplectic (canonical splittings) or Lie-Poisson (so3); runs the TP-IR program as a
    ``lax.scan``; works under jax.jit, jax.vmap (ensembles, per-member dt and parameters) and jax.grad
    (initial state, dt, and parameters closed over by H). A negative dt integrates backward.

    Args:
      H: scalar energy, ``H(q, p)`` (canonical) or ``H(L)`` (so3); any JAX-traceable function.
      state: ``(q, p)`` arrays of equal shape and floating dtype (canonical), ``L`` of shape (3,) (so3),
        ``(L, Gamma)`` (se3, the heavy top), or ``z`` of shape (n,) when ``structure`` is a function.
      structure: "canonical", "so3", "se3", or a function ``J(z)`` returning an (n, n) skew-symmetric
        matrix (a generic state-dependent Poisson structure; checked for skewness; implicit midpoint).
      dt: step size (scalar; an operand, so changing it never recompiles).
      steps: number of steps (a static non-negative int).
      method: a name from ``tpjax.METHODS`` or an integrator object (default: leapfrog for canonical,
        implicit_midpoint for so3/se3; ``rigid_body``/``rigid_body4`` for H = sum L_i^2/(2 I_i)).
      adjoint: how ``jax.grad`` differentiates the loop: "reversible" (default for symmetric methods;
        states rebuilt backward in time, memory independent of steps), "checkpointed" (default
        otherwise; sqrt(steps) memory) or "direct" (stores every step).
      reanchor: with adjoint="reversible", also store every ``reanchor``-th state and restart the
        backward reconstruction there (bounds round-off growth in chaotic systems).
      backend: "auto" (the fused multi-step Triton kernel on CUDA when the program is fully TP-IR with
        one scalar system per array element -- e.g. under jax.vmap -- otherwise XLA), "triton" or "xla".
        Derivatives always come from the XLA path (the kernel's primitive has a JVP rule that uses it).
      fast_math: approximate sin/cos/exp in the Triton kernel (float32; opt-in, never the default).
      precision: a ``tpjax.Precision`` policy, e.g. ``Precision(grad="float64", step="float32",
        compensated=True)``: gradients in float64, state and steps in float32, optional Kahan updates.

    Returns: the final state, same pytree structure, shapes and dtypes as ``state``.
    """
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    if precision is not None and backend == "auto":
        backend = "xla"  # the fused kernel keeps one dtype
    if use_triton(comp, backend, fast_math):
        if comp.structure == "so3":  # the rigid-body splitting: one multi-step kernel
            from .primitives.fused_rigid_body import fused_rigid_body

            inertia = _stepper(comp)[1][-1]
            L = fused_rigid_body(parts[0], inertia, dt, steps=steps, order=comp.method.order, fast_math=fast_math)
            return _pack((L,), state, structure)
        from .primitives.fused import fused_integrate

        out = fused_integrate(comp, *parts, dt, comp.consts, steps=steps, fast_math=fast_math)
        return _pack(tuple(out), state, structure)
    comp = _for_xla(comp)
    z0 = _initial(comp, parts, comp.consts)
    adjoint = adj_resolve(adjoint, symmetric=comp.method.symmetric, method_name=comp.method.name)
    step, params = _stepper(comp)
    zf = _solve(step, z0, dt, params, steps, None, adjoint, reanchor)
    _check_converged(comp, zf, dt)
    return _pack(zf[: len(parts)], state, structure)


def trajectory(H: Callable, state, *, dt, steps: int, save_every: int = 1, method=None,
               structure="canonical", adjoint: str | None = None, reanchor: int | None = None,
               precision=None, backend: str = "auto", fast_math: bool = False) -> Solution:  # fmt: skip
    """Like :func:`integrate`, but returns a :class:`Solution` with the state saved every ``save_every``
    steps (the initial state first) and the energy H at each saved state. On CUDA the fused kernel
    writes only the saved states (``backend``, ``fast_math`` as in :func:`integrate`)."""
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    k = check.save_every(save_every, steps) if steps else 1
    if precision is not None and backend == "auto":
        backend = "xla"
    fused = steps > 0 and comp.structure == "canonical" and use_triton(comp, backend, fast_math)
    if not fused:
        comp = _for_xla(comp)
    z0 = _initial(comp, parts, comp.consts)
    adjoint = adj_resolve(adjoint, symmetric=comp.method.symmetric, method_name=comp.method.name)
    if fused:
        from .primitives.fused import fused_integrate

        _, _, Q, P = fused_integrate(comp, *parts, dt, comp.consts, steps=steps, fast_math=fast_math, save_every=k)
        saved = tuple(jnp.concatenate([z[None], s]) for z, s in zip(parts, (Q, P), strict=True))
    elif steps:
        step, params = _stepper(comp)
        _, saved = _solve(step, z0, dt, params, steps, k, adjoint, reanchor)
        saved = tuple(jnp.concatenate([z[None], s]) for z, s in zip(z0, saved, strict=False))
    else:
        saved = tuple(z[None] for z in z0)
    saved = saved[: len(parts)]
    _check_converged(comp, tuple(s[-1] for s in saved), dt)
    consts = comp.consts

    def energy(*xs):
        return reference.run(comp.energy, _inputs(comp, xs, consts))["ptr_E"]

    energies = jax.vmap(energy)(*saved)
    ts = jnp.arange(saved[0].shape[0], dtype=parts[0].dtype) * (k * dt)
    return Solution(ts, _pack(saved, state, structure), energies, casimirs(structure, saved))
