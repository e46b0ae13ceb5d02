"""Public API: integrate, trajectory, compile. Glue only: validate, compile, choose an executor, run it."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import _validate, cache, driver, time_dependent
from . import _validate as check
from .codegen import reference
from .compiler import Compiled, compile_hamiltonian
from .events import Event
from .executors import choose
from .integrators.stepper import program_inputs
from .saveat import SaveAt
from .solution import Solution
from .structures import resolve
from .tangent import attach as attach_tangent


def compile(H: Callable, state, *, method=None, structure="canonical", precision=None) -> Compiled:  # noqa: A001
    """Compile ``H`` to TP-IR for ``state``'s shapes and dtypes; ``print()`` the result for the listing.

    Returns a :class:`Compiled` with the optimised ``step`` program, the seed-style ``source`` (forward,
    backward, Poisson and integrate phases before passes), the FSAL ``prologue`` and the ``energy`` program.
    """
    if not callable(H):
        raise TypeError(f"H must be a callable H(q, p) -> scalar, got {type(H).__name__}")
    _debug_hooks()
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


def _debug_hooks() -> None:
    """TPJAX_DEBUG=3: register the Triton generator's hook, so a plain compile prints the generated kernel."""
    import os

    if int(os.environ.get("TPJAX_DEBUG", "0") or 0) >= 3:
        from .codegen import triton  # noqa: F401  (importing it registers the hook)


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
              fast_math: bool = False, precision=None, progress=False, t0=0.0,
              check: bool = False):  # fmt: skip
    """Integrate Hamilton's equations of ``H`` from ``state`` for ``steps`` steps of size ``dt``.

    Properties: symplectic (canonical splittings) or Lie-Poisson (so3); runs the TP-IR program as a
    ``lax.scan`` or a fused kernel; works under jax.jit, jax.vmap (ensembles, per-member dt and
    parameters) and jax.grad (initial state, dt, and parameters closed over by H). A negative dt
    integrates backward.

    Args:
      H: scalar energy, ``H(q, p)`` (canonical) or ``H(L)`` (so3); any JAX-traceable function.
      state: ``(q, p)`` arrays of equal shape and floating dtype (canonical), ``L`` of shape (3,) (so3),
        ``(L, Gamma)`` (se3, the heavy top), ``r`` of shape (n, 2) (``tpjax.PointVortices``), or ``z`` of
        shape (n,) when ``structure`` is a function. Or a :class:`Solution` of an earlier run: continue from
        its final state and carried registers (bit for bit the same as one longer run on the XLA path).
      structure: "canonical", "so3", "se3", a structure object (``tpjax.PointVortices(circulations)``), or
        a function ``J(z)`` returning an (n, n) skew-symmetric matrix (checked for skewness).
      dt: step size (scalar; an operand, so changing it never recompiles).
      steps: number of steps (a static non-negative int).
      method: a name from ``tpjax.METHODS`` or an integrator object (default: the structure's, leapfrog
        for canonical, implicit_midpoint otherwise; ``rigid_body``/``rigid_body4`` for H = sum L_i^2/(2 I_i)).
      adjoint: how ``jax.grad`` differentiates the loop: "guarded" (default for symmetric methods: states
        rebuilt backward in time and checked against stored anchors, segments that fail the check are
        recomputed exactly; memory flat in steps), "reversible" (the unchecked O(1)-memory rebuild; can be
        wrong on chaotic systems), "checkpointed" (default otherwise; sqrt(steps) memory) or "direct"
        (stores every step). "reversible"/"guarded" are refused for non-symmetric methods.
      reanchor: with "guarded" or "reversible", the segment length between stored anchor states.
      backend: "auto" (a fused Triton kernel on CUDA when one applies, otherwise XLA), "triton" or "xla".
        Derivatives always come from the XLA path.
      fast_math: approximate sin/cos/exp in the Triton kernel (float32; opt-in, never the default).
      precision: a ``tpjax.Precision`` policy, e.g. ``Precision(grad="float64", step="float32",
        compensated=True)``: gradients in float64, state and steps in float32, optional Kahan updates.
      progress: True for a tqdm progress bar updated from inside the compiled loop (one bar for a vmapped
        ensemble), or a dict of tqdm options (e.g. ``{"file": f}``); off by default (nothing added).
      t0: the initial time. ``H(q, p, t)`` (three positional parameters without defaults) is time-dependent
        and is integrated in the extended phase space (``tpjax.time_dependent``); an autonomous H ignores it.

      check: opt-in run-time check (like diffrax's ``throw``): the run also saves about sqrt(steps) states
        and re-runs about sqrt(steps) steps, and a NaN/Inf dt or state raises ``tpjax.NonFiniteError``
        naming the ensemble member and the step where it appeared, also under jax.jit and jax.vmap
        (through a host callback; under jit it arrives wrapped in a JaxRuntimeError). Eager calls always
        refuse a non-finite initial state or dt.

    Returns: the final state, same pytree structure, shapes and dtypes as ``state``.
    """
    plain = progress is False and type(t0) in (int, float) and t0 == 0.0 and not isinstance(state, Solution)
    static = dict(steps=steps, method=method, structure=structure, adjoint=adjoint, reanchor=reanchor,
                  backend=backend, fast_math=fast_math, precision=precision, check=check)  # fmt: skip
    if plain and (out := cache.cached_call(integrate, compile, H, state, dt, static)) is not cache.MISS:
        return out
    state, carry, _ = driver.resume(state)
    H, state, restore = time_dependent.extend(H, state, t0, structure)
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    # continuing from a Solution's carried registers needs the XLA loop off CUDA (the kernels take none)
    executor = choose(comp, backend, fast_math, at_lowering=carry is None)
    if progress is False and carry is None:
        final, _ = _run(executor, comp, parts, dt, check, steps=steps, adjoint=adjoint, reanchor=reanchor)
    else:
        if check:
            raise NotImplementedError("check=True runs a fresh run without a progress bar; drop progress=, or "
                                      "continue from sol.final instead of the Solution")  # fmt: skip
        final, _ = driver.advance(comp, executor, parts, dt, steps=steps, adjoint=adjoint, reanchor=reanchor,
                                  progress=progress, carry=driver.carry_for(carry, comp, executor, parts))  # fmt: skip
    return restore(comp.structure.pack(final, state))


def trajectory(H: Callable, state, *, dt, steps: int, save_every: int | None = None, saveat=None, method=None,
               structure="canonical", adjoint: str | None = None, reanchor: int | None = None,
               precision=None, backend: str = "auto", fast_math: bool = False, progress=False,
               event=None, t0=0.0, tangent: bool = False, check: bool = False) -> Solution:  # fmt: skip
    """Like :func:`integrate`, but returns a :class:`Solution`: the saved states (or observables), the
    energy H and the structure's Casimirs at each saved time, the final state and carry, run stats.

    Args (besides :func:`integrate`'s):
      save_every: save the initial state and every k-th (``SaveAt(t0=True, steps=k)``; default 1).
      saveat: a ``tpjax.SaveAt`` (times ``ts`` on the step grid, every ``steps``, ``t0``/``t1``, and
        ``fn(t, state)`` to save an observable instead of the state).
      event: a ``tpjax.Event(cond_fn, terminal=True)``: stop each member where ``cond_fn(t, state)``
        changes sign (``sol.event_happened``, ``sol.event_time``); XLA only; saves t0 and the final state.
      state: as in :func:`integrate`, also a Solution to continue (``ts`` continue from its ``t_final``).
      t0: the initial time (``ts`` starts there; see :func:`integrate` for a time-dependent H).
      tangent: also run the tangent map (``tpjax.tangent``) and fill ``sol.lyapunov`` and ``sol.megno`` at
        the saved times (needs saving every k steps: ``save_every`` or ``SaveAt(steps=k)``).
      check: as in :func:`integrate` (with ``save_every`` saving only: no SaveAt, event or progress).
    On CUDA the fused kernels write only the saved states (``backend``, ``fast_math`` as in
    :func:`integrate`); with ``fn`` they run one kernel per save block."""
    if check:
        if saveat is not None or event is not None or progress is not False or tangent:
            raise NotImplementedError("check=True saves with save_every only (no saveat, event, progress or "
                                      "tangent); run integrate(..., check=True) first to check such a run")  # fmt: skip
        return _checked_trajectory(H, state, dt, steps, save_every or 1, method, structure, adjoint, reanchor,
                                   precision, backend, fast_math, t0)  # fmt: skip
    state, carry, t_start = driver.resume(state)
    H, state, restore = time_dependent.extend(H, state, t0, structure)
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    if saveat is not None and save_every is not None:
        raise ValueError("pass either save_every=k or saveat=tpjax.SaveAt(...), not both")
    if event is not None and save_every is not None:
        raise ValueError("with event=..., save_every does not apply (a run that stops early has no fixed save "
                         "grid); drop it, or pass saveat=tpjax.SaveAt(t0=..., t1=..., fn=...)")  # fmt: skip
    if saveat is None:
        saveat = SaveAt(t0=True, t1=True) if event is not None else SaveAt(t0=True, steps=save_every or 1)
        if steps and event is None:
            _validate.save_every(saveat.steps, steps)
    elif not isinstance(saveat, SaveAt):
        raise TypeError(f"saveat must be a tpjax.SaveAt, got {type(saveat).__name__}")
    if event is not None:
        if not isinstance(event, Event):
            raise TypeError(f"event must be a tpjax.Event(cond_fn), got {type(event).__name__}")
        if backend == "triton":
            raise NotImplementedError("backend='triton' cannot run events (the fused kernels have no per-step "
                                      "check); use backend='xla' or 'auto'")  # fmt: skip
        backend = "xla"
    # a trajectory's Solution carries the loop registers (for resuming), which the kernels do not return:
    # off CUDA it runs the XLA loop itself rather than the kernel primitive's XLA lowering
    executor = choose(comp, backend, fast_math, at_lowering=False)
    n = len(comp.traced.consts)

    def energy(xs):
        return reference.run(comp.energy, program_inputs(comp, xs, comp.consts[:n]))["ptr_E"]

    sol = driver.simulate(comp, executor, parts, dt, steps=steps, saveat=saveat, adjoint=adjoint,
                          reanchor=reanchor, to_state=lambda p: comp.structure.pack(p, state), energy=energy,
                          progress=progress, event=event, carry=driver.carry_for(carry, comp, executor, parts),
                          t_start=t_start)  # fmt: skip
    if tangent:
        if saveat.steps is None or saveat.ts is not None or saveat.fn is not None or event is not None:
            raise ValueError("tangent=True needs saving every k steps (save_every=k or SaveAt(steps=k)) and no "
                             "event or observable fn")  # fmt: skip
        sol = attach_tangent(sol, comp, parts, dt, steps, saveat.steps)
    return restore(sol)


def _checked_trajectory(H, state, dt, steps, save_every, method, structure, adjoint, reanchor, precision, backend,
                        fast_math, t0):  # fmt: skip
    """trajectory(check=True): the saved states come from the checked run (see :func:`_run`)."""
    state, _, t_start = driver.resume(state)
    H, state, restore = time_dependent.extend(H, state, t0, structure)
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure, precision)
    k = _validate.save_every(save_every, steps) if steps else 1
    executor = choose(comp, backend, fast_math, at_lowering=False)
    if steps:
        final, saved = _run(executor, comp, parts, dt, True, steps=steps, save_every=k, adjoint=adjoint,
                            reanchor=reanchor)  # fmt: skip
        saved = tuple(jnp.concatenate([z[None], s]) for z, s in zip(parts, saved, strict=True))
    else:
        final, saved = tuple(parts), tuple(z[None] for z in parts)
    n = len(comp.traced.consts)

    def energy(*xs):
        return reference.run(comp.energy, program_inputs(comp, xs, comp.consts[:n]))["ptr_E"]

    st = comp.structure
    ts = t_start + jnp.arange(saved[0].shape[0], dtype=parts[0].dtype) * (k * dt)
    sol = Solution(ts, st.pack(saved, state), jax.vmap(energy)(*saved), st.casimirs(saved),
                   final=st.pack(tuple(final), state), t_final=t_start + steps * dt, backend=executor.name,
                   method=comp.method.name, steps=steps)  # fmt: skip
    return restore(sol)
