"""`solve`: run a one-step map for many steps, with a choice of how reverse mode gets its gradient."""

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import loops
from .guarded import ANCHORS, default_tol
from .reversible import Config, reversible_solve

ADJOINTS = ("guarded", "reversible", "checkpointed", "direct")


def solve(
    step,
    z0,
    dt,
    params,
    *,
    steps: int,
    save_every: int | None = None,
    adjoint: str = "guarded",
    reanchor: int | None = None,
    checkpoints: int | None = None,
    tol: float | None = None,
    unroll: int = 1,
    fuse: bool = False,
):
    """Run z_{n+1} = step(params, z_n, dt) for `steps` steps.

    Properties: works under `jax.jit`, `jax.vmap` (batched z0, params, dt), `jax.grad`/`jax.vjp` and
    `jax.jvp`/`jax.jacfwd` for every adjoint; all adjoints give the same numbers up to round-off.

    Args:
      step: pure function (params, z, dt) -> z; z and params are pytrees of arrays, dt a scalar array. For
        adjoint="reversible" it must be time-symmetric: step(params, step(params, z, dt), -dt) == z.
        Arrays it closes over are hoisted into explicit operands (and differentiated), so closures are fine.
      z0: initial state (pytree of floating arrays).
      dt: scalar time step (differentiable).
      params: pytree of arrays passed to every step (differentiable).
      steps: static number of steps, a non-negative int.
      save_every: None, or a positive int dividing `steps`: also return the states after every
        `save_every` steps, stacked along a new leading axis of length steps // save_every.
      adjoint: how reverse mode differentiates the loop:
        "guarded" (default): the reversible reconstruction below, verified. The forward pass stores 32
          anchors (true states every K = ceil(steps / 32) steps); backward, each segment is rebuilt from its
          end anchor and the rebuilt start compared with the stored one; a segment whose relative error
          exceeds `tol` is discarded and redone exactly from its start anchor (forward replay with 32
          sub-anchors, then the same check; what still fails is recomputed step by step). Decided at run
          time with `lax.cond`, under jit and vmap. Gradients equal "direct" up to `tol`-level effects on
          chaotic systems too; memory ~64 states + a few, independent of `steps`; when no segment fails, the
          cost is that of "reversible". Needs a time-symmetric step (otherwise every segment replays).
        "reversible": the unverified O(1)-memory version: rebuilds z_n = step(params, z_{n+1}, -dt) (one
          extra step and one vjp per step) with nothing stored but z_N (and anchors with `reanchor`).
          Round-off grows like the Lyapunov exponent backward: on chaotic systems (double pendulum, heavy
          top, FPU, Henon-Heiles, Lennard-Jones clusters) its gradients can be wrong by O(1) with no warning.
        "checkpointed": exact, for any method: `jax.checkpoint`-ed segments, O(sqrt(steps)) memory, about one
          extra forward pass.
        "direct": plain `lax.scan`; JAX stores every step (O(steps) memory), the fastest for short runs.
      reanchor: "guarded" and "reversible" only. None, or K > 0: store the true state every K steps and restart
        the backward reconstruction from them (memory O(steps / K)). For "guarded" it sets the segment length
        (default ceil(steps / 32)); shorter segments fail less often and replay less.
      checkpoints: "checkpointed" only. None, or the number of stored segment starts per run (per block of
        `save_every` steps when saving); default ceil(sqrt(steps or save_every)).
      tol: "guarded" only. Relative reconstruction error above which a segment is replayed; default
        eps^(2/3) of the state dtype (3.7e-11 float64, 2.4e-5 float32). tol=0 replays every segment
        (exact, about twice the work); use adjoint="reversible" for the pure unchecked O(1) version.

      unroll: steps per iteration of the forward loop (lax.scan's ``unroll``): the same arithmetic in fewer
        loop trips, which pays for small step bodies (the executors choose it, see
        ``tpjax.executors.loop_form``); derivatives are unaffected.
      fuse: "guarded" only: run the gradient's anchored forward and its reversible backward sweeps as fused
        loops (``tpjax.primitives.fused_loop``): on CUDA one generated Triton kernel per loop where the step
        qualifies, elsewhere the same steps through XLA. The fused executors pass it. With `save_every` and no
        `reanchor`, the anchor interval is rounded up to a multiple of `save_every` (anchors on save blocks).

    Returns:
      z_final (same pytree as z0) if save_every is None, else (z_final, saved), where saved[k] is the state
      after (k + 1) * save_every steps (so saved[-1] == z_final).
    """
    _check(steps, save_every, adjoint, reanchor, checkpoints, tol)
    dt = jnp.asarray(dt)
    if dt.ndim != 0:
        raise ValueError(
            f"dt must be a scalar, got shape {dt.shape}; to run an ensemble with one dt per member, jax.vmap over dt."
        )
    if not jnp.issubdtype(dt.dtype, jnp.inexact):
        dt = dt.astype(jnp.result_type(float))
    if steps == 0:
        if save_every is None:
            return z0
        return z0, jax.tree_util.tree_map(lambda x: jnp.zeros((0, *jnp.shape(x)), jnp.result_type(x)), z0)

    unroll = int(unroll)
    if adjoint == "direct":
        zT, saved = loops.forward(step, params, z0, dt, steps, save_every, partial(loops.run, unroll=unroll))
    elif adjoint == "checkpointed":
        n = save_every or steps
        runner = partial(loops.run_checkpointed, segments=checkpoints or math.isqrt(n - 1) + 1, unroll=unroll)
        if save_every is not None:  # the block re-runs in the backward pass: store only its start
            runner = _checkpointed_block(runner)
        zT, saved = loops.forward(step, params, z0, dt, steps, save_every, runner)
    elif adjoint == "reversible":
        zT, saved = _reversible(step, z0, dt, params, steps, save_every, reanchor, unroll=unroll)
    else:
        every = reanchor or -(-steps // ANCHORS)
        if fuse and save_every is not None and reanchor is None:  # segments of whole save blocks: then every
            every = -(-every // save_every) * save_every  # anchor is a saved state (loops.forward_anchored)
        zT, saved = _reversible(step, z0, dt, params, steps, save_every, every, tol, unroll=unroll, fuse=fuse)
    return zT if save_every is None else (zT, saved)


def _checkpointed_block(runner):
    def run_block(step, params, z, dt, n):
        return jax.checkpoint(lambda p, z, dt: runner(step, p, z, dt, n), prevent_cse=False)(params, z, dt)

    return run_block


@dataclasses.dataclass(frozen=True, eq=False)
class _FlatStep:
    """step(params, z, dt) as a closure-free function of leaf lists: (params + hoisted consts, z, dt)."""

    jaxpr: object  # open jaxpr: holds no const values (no tracers), they come in as params[npar:]
    npar: int

    def __call__(self, params, z, dt):
        consts = params[self.npar :]
        return jax.core.eval_jaxpr(self.jaxpr, consts, *params[: self.npar], *z, dt)


def _open_jaxpr(closed):
    """The jaxpr of `jax.make_jaxpr` without its const values (jax >= 0.11 attaches them to the jaxpr)."""
    jaxpr = closed.jaxpr
    if getattr(jaxpr, "consts", None) and hasattr(jaxpr, "with_consts"):
        jaxpr = jaxpr.with_consts([])
    return jaxpr


def _reversible(step, z0, dt, params, steps, save_every, reanchor, tol=False, unroll=1, fuse=False):
    """The custom-derivative solve; tol=False: plain reversible, else guarded (tol None: the default)."""
    z0 = loops.carry_like(z0, params, dt)  # shard_map: trace the step with the state's loop-carry type
    z_leaves, z_tree = jax.tree_util.tree_flatten(z0)
    p_leaves = jax.tree_util.tree_leaves(params)
    jaxpr, out_shape = jax.make_jaxpr(step, return_shape=True)(params, z0, dt)
    out_leaves, out_tree = jax.tree_util.tree_flatten(out_shape)
    same = out_tree == z_tree and all(
        o.shape == jnp.shape(z) and o.dtype == jnp.result_type(z) for o, z in zip(out_leaves, z_leaves, strict=True)
    )
    if not same:
        raise TypeError(
            "step(params, z, dt) must return a state with the pytree structure, shapes and dtypes of z0; "
            f"got {out_shape} for z0 = {jax.tree_util.tree_map(jax.typeof, z0)}."
        )
    consts = list(jaxpr.consts)  # closed-over arrays (tracers included) become explicit operands
    flat_step = _FlatStep(_open_jaxpr(jaxpr), len(p_leaves))
    cfg = Config(flat_step, len(z_leaves), len(p_leaves) + len(consts), steps, save_every, reanchor, unroll=unroll)
    if tol is not False:
        tol = default_tol([jnp.result_type(z) for z in z_leaves]) if tol is None else float(tol)
        cfg = dataclasses.replace(cfg, guarded=True, tol=tol, fuse=bool(fuse))
    zT, saved = reversible_solve(cfg, [*p_leaves, *consts], [jnp.asarray(z) for z in z_leaves], dt)
    unflat = partial(jax.tree_util.tree_unflatten, z_tree)
    return unflat(zT), (unflat(saved) if save_every else None)


def _is_int(x):
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _check(steps, save_every, adjoint, reanchor, checkpoints, tol):
    if adjoint not in ADJOINTS:
        raise ValueError(
            f"adjoint must be one of {ADJOINTS}, got {adjoint!r}. Use 'guarded' for time-symmetric "
            "methods (leapfrog, yoshida4, ...), 'checkpointed' for any other method, 'direct' for short runs."
        )
    if not _is_int(steps) or steps < 0:
        raise ValueError(
            f"steps must be a non-negative Python int, got {steps!r} ({type(steps).__name__}); under "
            "jax.jit pass it as a static argument (static_argnames=('steps',))."
        )
    if save_every is not None and (not _is_int(save_every) or save_every <= 0 or steps % save_every):
        raise ValueError(
            f"save_every must be None or a positive int dividing steps={steps}, got {save_every!r}; "
            "pick a divisor of steps or round steps up to a multiple of save_every."
        )
    if reanchor is not None:
        if not _is_int(reanchor) or reanchor <= 0:
            raise ValueError(f"reanchor must be None or a positive int (anchor every K steps), got {reanchor!r}.")
        if adjoint not in ("guarded", "reversible"):
            raise ValueError(
                f"reanchor only applies to adjoint='reversible' or 'guarded', got adjoint={adjoint!r}; drop it."
            )
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating) or not tol >= 0:
            raise ValueError(f"tol must be None or a float >= 0 (relative reconstruction error), got {tol!r}.")
        if adjoint != "guarded":
            raise ValueError(f"tol only applies to adjoint='guarded', got adjoint={adjoint!r}; drop it.")
    if checkpoints is not None:
        if not _is_int(checkpoints) or checkpoints <= 0:
            raise ValueError(f"checkpoints must be None or a positive int, got {checkpoints!r}.")
        if adjoint != "checkpointed":
            raise ValueError(f"checkpoints only applies to adjoint='checkpointed', got adjoint={adjoint!r}; drop it.")
