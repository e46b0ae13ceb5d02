"""Public API: integrate, trajectory, compile. Glue only: validate, compile, choose an executor, run it."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import _validate, cache
from . import _validate as check
from .codegen import reference
from .compiler import Compiled, compile_hamiltonian
from .executors import choose
from .integrators.stepper import program_inputs
from .solution import Solution
from .structures import resolve


def compile(H: Callable, state, *, method=None, structure="canonical", precision=None) -> Compiled:  # noqa: A001
    """Compile ``H`` to TP-IR for ``state``'s shapes and dtypes; ``print()`` the result for the listing.

    Returns a :class:`Compiled` with the optimised ``step`` program, the seed-style ``source`` (forward,
    backward, Poisson and integrate phases before passes), the FSAL ``prologue`` and the ``energy`` program.
    """
    if not callable(H):
        raise TypeError(f"H must be a callable H(q, p) -> scalar, got {type(H).__name__}")
    st = resolve(structure)
    parts = st.check_state(state)
    H = st.wrap_hamiltonian(H, state)  # e.g. pytree q, p: H of the raveled vectors
    check.state_dtype(parts, st.parts)
    check.hamiltonian(H, parts)
    policy = check.precision(precision, parts)
    integ = check.method(method, st, H, parts, policy)
    comp = compile_hamiltonian(H, parts, integ, st, precision=policy)
    check.energy_aval(comp.traced)
    st.check(comp.traced)
    integ.check(comp)
    return comp


def _prepare(H, state, dt, steps, method, structure, precision):
    comp = compile(H, state, method=method, structure=structure, precision=precision)
    parts = comp.structure.check_state(state)
    check.metal_dtype(parts)
    check.finite_state(parts, comp.structure.parts)
    return comp, parts, check.steps(steps), check.dt(dt, parts[0].dtype)


def _run(executor, comp, parts, dt, checked: bool, **kw):
    """executor.run; with ``checked`` (``check=True``) the run saves about sqrt(steps) states, re-runs the
    window before the first non-finite one step by step (about sqrt(steps) more steps), and a host callback
    raises NonFiniteError naming the member and the step when dt or a state is NaN/Inf."""
    if not checked:
        return executor.run(comp, parts, dt, **kw)
    if not isinstance(checked, bool):
        raise TypeError(f"check must be True or False, got {checked!r}")
    steps, every = kw["steps"], kw.pop("save_every", None)
    if not steps:
        return tuple(parts), None
    k = every or check.check_every(steps)
    with check.raising_non_finite():
        final, saved = executor.run(comp, parts, dt, save_every=k, **kw)
        fine = None
        if k > 1:  # re-run the window before the first non-finite saved state step by step (for the report)
            t = check.first_bad_row(saved)
            start = tuple(jax.lax.stop_gradient(jnp.where(t == 0, z, s[jnp.maximum(t - 1, 0)]))
                          for z, s in zip(parts, saved, strict=True))  # fmt: skip
            _, fine = executor.run(comp, start, jax.lax.stop_gradient(dt), steps=k, save_every=1,
                                   adjoint="direct", reanchor=None)  # fmt: skip
        zero = check.guard(saved, k, comp.structure.parts, dt, fine)
        final, saved = ([a + zero.astype(a.dtype) for a in xs] for xs in (final, saved))  # keeps the check alive
        jax.block_until_ready((final, saved))
    return tuple(final), (tuple(saved) if every else None)


def integrate(H: Callable, state, *, dt, steps: int, method=None, structure="canonical",
              adjoint: str | None = None, reanchor: int | None = None, backend: str = "auto",
              fast_math: bool = False, precision=None, check: bool = False):  # fmt: skip
    """Integrate Hamilton's equations of ``H`` from ``state`` for ``steps`` steps of size ``dt``.

    Properties: symplectic (canonical splittings) or Lie-Poisson (so3); runs the TP-IR program as a
    ``lax.scan`` or a fused kernel; works under jax.jit, jax.vmap (ensembles, per-member dt and
    parameters) and jax.grad (initial state, dt, and parameters closed over by H). A negative dt
    integrates backward.

    Args:
      H: scalar energy, ``H(q, p)`` (canonical) or ``H(L)`` (so3); any JAX-traceable function.
      state: ``(q, p)`` arrays of equal shape and floating dtype (canonical), ``L`` of shape (3,) (so3),
        ``(L, Gamma)`` (se3, the heavy top), ``r`` of shape (n, 2) (``tpjax.PointVortices``), or ``z`` of
        shape (n,) when ``structure`` is a function.
      structure: "canonical", "so3", "se3", a structure object (``tpjax.PointVortices(circulations)``), or
        a function ``J(z)`` returning an (n, n) skew-symmetric matrix (checked for skewness).
      dt: step size (scalar; an operand, so changing it never recompiles).
      steps: number of steps (a static non-negative int).
      method: a name from ``tpjax.METHODS`` or an integrator object (default: the structure's, leapfrog
        for canonical, implicit_midpoint otherwise; ``rigid_body``/``rigid_body4`` for H = sum L_i^2/(2 I_i)).
      adjoint: how ``jax.grad`` differentiates the loop: "reversible" (default for symmetric methods;
        states rebuilt backward in time), "checkpointed" (default otherwise; sqrt(steps) memory) or
        "direct" (stores every step).
      reanchor: with adjoint="reversible", also store every ``reanchor``-th state and restart the
        backward reconstruction there.
      backend: "auto" (a fused Triton kernel on CUDA when one applies, otherwise XLA), "triton" or "xla".
        Derivatives always come from the XLA path.
      fast_math: approximate sin/cos/exp in the Triton kernel (float32; opt-in, never the default).
      precision: a ``tpjax.Precision`` policy, e.g. ``Precision(grad="float64", step="float32",
        compensated=True)``: gradients in float64, state and steps in float32, optional Kahan updates.
      check: opt-in run-time check (like diffrax's ``throw``): the run also saves about sqrt(steps) states
        and re-runs about sqrt(steps) steps, and a NaN/Inf dt or state raises ``tpjax.NonFiniteError``
        naming the ensemble member and the step where it appeared, also under jax.jit and jax.vmap
        (through a host callback; under jit it arrives wrapped in a JaxRuntimeError). Eager calls always
        refuse a non-finite initial state or dt.

    Returns: the final state, same pytree structure, shapes and dtypes as ``state``.
    """
    static = dict(steps=steps, method=method, structure=structure, adjoint=adjoint, reanchor=reanchor,
                  backend=backend, fast_math=fast_math, precision=precision, check=check)  # fmt: skip
    if (out := cache.cached_call(integrate, compile, H, state, dt, static)) is not cache.MISS:
        return out
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    executor = choose(comp, backend, fast_math)
    final, _ = _run(executor, comp, parts, dt, check, steps=steps, adjoint=adjoint, reanchor=reanchor)
    return comp.structure.pack(final, state)


def trajectory(H: Callable, state, *, dt, steps: int, save_every: int = 1, method=None,
               structure="canonical", adjoint: str | None = None, reanchor: int | None = None,
               precision=None, backend: str = "auto", fast_math: bool = False,
               check: bool = False) -> Solution:  # fmt: skip
    """Like :func:`integrate`, but returns a :class:`Solution` with the state saved every ``save_every``
    steps (the initial state first), the energy H at each saved state and the structure's Casimirs.
    On CUDA the fused kernels write only the saved states (``backend``, ``fast_math`` as in
    :func:`integrate`, and ``check`` too)."""
    checked = check
    static = dict(steps=steps, save_every=save_every, method=method, structure=structure, adjoint=adjoint,
                  reanchor=reanchor, precision=precision, backend=backend, fast_math=fast_math,
                  check=check)  # fmt: skip
    if (out := cache.cached_call(trajectory, compile, H, state, dt, static)) is not cache.MISS:
        return out
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    k = _validate.save_every(save_every, steps) if steps else 1
    executor = choose(comp, backend, fast_math)
    if steps:
        _, saved = _run(executor, comp, parts, dt, checked, steps=steps, save_every=k, adjoint=adjoint,
                        reanchor=reanchor)  # fmt: skip
        saved = tuple(jnp.concatenate([z[None], s]) for z, s in zip(parts, saved, strict=True))
    else:
        saved = tuple(z[None] for z in parts)
    n = len(comp.traced.consts)

    def energy(*xs):
        return reference.run(comp.energy, program_inputs(comp, xs, comp.consts[:n]))["ptr_E"]

    energies = jax.vmap(energy)(*saved)
    ts = jnp.arange(saved[0].shape[0], dtype=parts[0].dtype) * (k * dt)
    st = comp.structure
    return Solution(ts, st.pack(saved, state), energies, st.casimirs(saved))
