"""The "reversible" adjoint: O(1)-memory gradients for time-reversible steps, with forward mode intact.

How it fits JAX's autodiff (reverse mode = JVP, then partial evaluation, then transposition):

* `reversible_solve` is a `jax.custom_jvp`. Its primal is the plain forward scan. Its JVP rule runs the
  forward scan (storing only z_N, the saved states and, with `reanchor`, the anchors) and returns as output
  tangent one `tangent_p` equation: a primitive that is linear in the input tangents (dz0, dparams, ddt)
  and takes z0, z_N, anchors, params, dt as non-linear residuals.
* Forward mode (`jax.jvp`, `jax.jacfwd`) evaluates `tangent_p`: its impl/lowering is `jax.jvp` of the forward
  scan, which is memory-cheap.
* Reverse mode (`jax.grad`, `jax.vjp`) transposes `tangent_p`: the transpose rule is `loops.backward`, which
  rebuilds the states backward in time with step(params, z, -dt). The only residuals kept between the two
  passes are the operands above, so memory does not grow with the number of steps.
* `jax.vmap` batches `tangent_p` by vmapping the step function itself (still reversible) and re-binding.

We do not use `jax.custom_vjp`: JAX refuses forward mode through it, and a `custom_jvp` around it would be
linearised through its own JVP rule, so `jax.grad` would never reach the custom backward pass.
"""

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from ..primitives._sharding import batch_entry, like, shard_axis
from . import fused_sweep, guarded, loops


@dataclasses.dataclass(frozen=True)
class Config:
    """Static data of one reversible solve. `step(params: list, z: list, dt) -> list` works on flat leaves."""

    step: Callable
    nz: int  # number of state leaves
    npar: int  # number of parameter leaves
    steps: int
    save_every: int | None
    every: int | None  # reanchor interval, None for none
    guarded: bool = False  # check the reconstruction at the anchors and replay failing segments (guarded.py)
    tol: float = 0.0  # guarded: relative reconstruction tolerance
    lin_mask: tuple[bool, ...] = ()  # over (z0 leaves, param leaves, dt): which tangents are operands
    unroll: int = 1  # steps per loop iteration of the primal forward scan
    fuse: bool = False  # guarded: the gradient's forward run and backward sweeps as fused loops (fused_sweep.py)

    @property
    def n_res(self):  # z0, zN, anchors, params, dt
        return 2 * self.nz + (self.nz if self.every else 0) + self.npar + 1

    def split_res(self, res):
        nz, na = self.nz, (self.nz if self.every else 0)
        z0, zT, anc = res[:nz], res[nz : 2 * nz], res[2 * nz : 2 * nz + na]
        return list(z0), list(zT), (list(anc) if self.every else None), list(res[2 * nz + na : -1]), res[-1]


# ---------------------------------------------------------------- custom_jvp front


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def reversible_solve(cfg, params, z0, dt):
    """(params list, z0 list, dt) -> (z_N list, saved list or [])."""
    runner = partial(loops.run, unroll=cfg.unroll)
    zT, saved = loops.forward(cfg.step, params, z0, dt, cfg.steps, cfg.save_every, runner)
    return zT, (saved if cfg.save_every else [])


@partial(reversible_solve.defjvp, symbolic_zeros=True)
def _reversible_solve_jvp(cfg, primals, tangents):
    params, z0, dt = primals
    tp, tz0, tdt = tangents
    if cfg.every:
        zT, saved, anchors = loops.forward_anchored(
            cfg.step,
            params,
            z0,
            dt,
            cfg.steps,
            cfg.save_every,
            cfg.every,
            cfg.unroll,
            fused_run=fused_sweep.run if cfg.fuse and cfg.guarded else None,
            fused_saving_run=fused_sweep.run_saving if cfg.fuse and cfg.guarded else None,
        )
    else:
        (zT, saved), anchors = loops.forward(cfg.step, params, z0, dt, cfg.steps, cfg.save_every), []
    saved = saved if cfg.save_every else []
    lin_all = [*tz0, *tp, tdt]
    mask = tuple(not isinstance(t, SymbolicZero) for t in lin_all)
    if not any(mask):
        return (zT, saved), jax.tree_util.tree_map(jnp.zeros_like, (zT, saved))
    cfg = dataclasses.replace(cfg, lin_mask=mask)
    lin = [t for t, m in zip(lin_all, mask, strict=True) if m]
    out = tangent_p.bind(*z0, *zT, *anchors, *params, dt, *lin, cfg=cfg)
    return (zT, saved), (list(out[: cfg.nz]), list(out[cfg.nz :]))


# ---------------------------------------------------------------- tangent_p: primitive
tangent_p = Primitive("tpjax_reversible_tangent")
tangent_p.multiple_results = True


# ---------------------------------------------------------------- abstract eval
def _abstract_eval(*avals, cfg):
    z = avals[: cfg.nz]
    out = [like(a, avals) for a in z]  # laid out like the state (a mesh sharding, shard_map's manual axes)
    if cfg.save_every:
        out += [like(a, avals, shape=(cfg.steps // cfg.save_every, *a.shape), lead=1) for a in z]
    return out


# ---------------------------------------------------------------- impl: forward-mode tangent
def _impl(*ops, cfg):
    """Output tangents = jax.jvp of the forward scan in the (masked) input tangents."""
    z0, _, _, params, dt = cfg.split_res(ops[: cfg.n_res])
    lin = iter(ops[cfg.n_res :])
    primal_all = [*z0, *params, dt]
    diff = [x for x, m in zip(primal_all, cfg.lin_mask, strict=True) if m]

    def fwd(diff):
        it = iter(diff)
        full = [next(it) if m else x for x, m in zip(primal_all, cfg.lin_mask, strict=True)]
        zs, ps, d = full[: cfg.nz], full[cfg.nz : -1], full[-1]
        zT, saved = loops.forward(cfg.step, ps, zs, d, cfg.steps, cfg.save_every)
        return [*zT, *(saved if cfg.save_every else [])]

    _, out = jax.jvp(fwd, (diff,), ([next(lin) for _ in diff],))
    return out


# ---------------------------------------------------------------- JVP (second order) and transpose
def _jvp(primals, tangents, *, cfg):
    out = tangent_p.bind(*primals, cfg=cfg)
    if all(type(t) is ad.Zero for t in tangents[: cfg.n_res]):
        lin_t = [ad.instantiate_zeros(t) for t in tangents[cfg.n_res :]]
        return out, tangent_p.bind(*primals[: cfg.n_res], *lin_t, cfg=cfg)
    # Residuals perturbed too (forward-over-forward): differentiate the forward-mode implementation.
    _, t_out = jax.jvp(partial(_impl, cfg=cfg), tuple(primals), tuple(ad.instantiate_zeros(t) for t in tangents))
    return out, t_out


def _transpose(cts, *ops, cfg):
    """Cotangents of (dz0, dparams, ddt) from those of (z_N, saved): the reversible backward pass."""
    res, lin = ops[: cfg.n_res], ops[cfg.n_res :]
    assert not any(ad.is_undefined_primal(x) for x in res), "tangent_p residuals must be known"
    cts = [ad.instantiate_zeros(c) for c in cts]
    z0, zT, anchors, params, dt = cfg.split_res(res)
    want_p = cfg.lin_mask[cfg.nz : -1]
    ct_saved = cts[cfg.nz :] if cfg.save_every else None
    if cfg.guarded:  # a primitive of its own, so that vmap batches the step, not the run-time tests
        out = backward_p.bind(*res, *cts, cfg=cfg)
        n_p = sum(want_p)
        a0, gp, gdt = out[: cfg.nz], out[cfg.nz : cfg.nz + n_p], (out[-1] if cfg.lin_mask[-1] else None)
    else:
        a0, gp, gdt = loops.backward(
            cfg.step, params, zT, dt, cts[: cfg.nz], ct_saved, steps=cfg.steps, save_every=cfg.save_every,
            anchors=anchors, every=cfg.every, want_p=want_p, want_dt=cfg.lin_mask[-1],
        )  # fmt: skip
    full = iter([*a0, *_expand(gp, want_p), gdt])
    out = [c for c, m in zip(full, cfg.lin_mask, strict=True) if m]
    out = [c if ad.is_undefined_primal(x) else None for c, x in zip(out, lin, strict=True)]
    return [None] * cfg.n_res + out


def _expand(wanted, mask):
    it = iter(wanted)
    return [next(it) if m else None for m in mask]


# ---------------------------------------------------------------- batching: vmap the step itself
_VmappedStep = loops.VmappedStep


def _put(x, d, size, axis):
    """Move batch dim d of x to `axis`, broadcasting when x is unbatched (d is None)."""
    if d is None:
        x = jnp.expand_dims(x, axis)
        return jnp.broadcast_to(x, x.shape[:axis] + (size,) + x.shape[axis + 1 :])
    return jnp.moveaxis(x, d, axis)


def _batch(args, dims, *, cfg):
    size = next(x.shape[d] for x, d in zip(args, dims, strict=True) if d is not None)
    nz, na = cfg.nz, (cfg.nz if cfg.every else 0)
    res, lin = list(args[: cfg.n_res]), list(args[cfg.n_res :])
    rdims, ldims = list(dims[: cfg.n_res]), list(dims[cfg.n_res :])
    # map each lin operand to its primal position in (z0, params, dt)
    lin_pos = [i for i, m in enumerate(cfg.lin_mask) if m]
    lin_dim_at = {pos: d for pos, d in zip(lin_pos, ldims, strict=True)}
    new_res, new_lin = [], [None] * len(lin)
    for i, (x, d) in enumerate(zip(res, rdims, strict=True)):  # z0, zT, anchors: batch at the front of z
        if i < 2 * nz + na:
            new_res.append(_put(x, d, size, 1 if 2 * nz <= i else 0))
    p_axes = []
    for j in range(cfg.npar + 1):  # params then dt
        pos = nz + j
        x, d = res[2 * nz + na + j], rdims[2 * nz + na + j]
        batched = d is not None or lin_dim_at.get(pos, None) is not None
        new_res.append(_put(x, d, size, 0) if batched else x)
        p_axes.append(0 if batched else None)
    for k, pos in enumerate(lin_pos):
        batched = pos < nz or p_axes[pos - nz] == 0
        new_lin[k] = _put(lin[k], ldims[k], size, 0) if batched else lin[k]
    step = _VmappedStep(cfg.step, tuple(p_axes[:-1]), p_axes[-1])
    out = tangent_p.bind(*new_res, *new_lin, cfg=dataclasses.replace(cfg, step=step))
    return out, [0] * nz + ([1] * nz if cfg.save_every else [])


# ---------------------------------------------------------------- backward_p: the guarded reverse pass
# Its batching rule vmaps the step (as tangent_p's does), so the per-segment reconstruction tests stay scalars
# and `lax.cond` stays a branch under jax.vmap(jax.grad(...)) too (a batched predicate would become a select
# that always runs the replay). Its JVP differentiates the implementation, which is transposable.
backward_p = Primitive("tpjax_guarded_backward")
backward_p.multiple_results = True


def _bwd_impl(*ops, cfg):
    res, cts = ops[: cfg.n_res], ops[cfg.n_res :]
    z0, _, anchors, params, dt = cfg.split_res(res)
    a0, gp, gdt = guarded.backward(
        cfg.step, params, z0, dt, list(cts[: cfg.nz]), (list(cts[cfg.nz :]) if cfg.save_every else None),
        steps=cfg.steps, save_every=cfg.save_every, anchors_=anchors, every=cfg.every,
        want_p=cfg.lin_mask[cfg.nz : -1], want_dt=cfg.lin_mask[-1], tol=cfg.tol, fuse=cfg.fuse,
    )  # fmt: skip
    return [*a0, *gp, *([gdt] if cfg.lin_mask[-1] else [])]


def _bwd_abstract_eval(*avals, cfg):
    z0, _, _, params, dt = cfg.split_res(avals[: cfg.n_res])
    wanted = [p for p, w in zip(params, cfg.lin_mask[cfg.nz : -1], strict=True) if w]
    # Each cotangent has exactly its primal's type (mesh sharding, shard_map's manual axes): the state's
    # varies like the whole run; a parameter's or dt's does not gain the state's manual axes (a replicated
    # parameter inside shard_map gets a psum-ed, non-varying cotangent, as from jax.vjp of the step).
    return [like(a, avals) for a in z0] + [like(a) for a in [*wanted, *([dt] if cfg.lin_mask[-1] else [])]]


def _bwd_jvp(primals, tangents, *, cfg):
    tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
    return jax.jvp(partial(_bwd_impl, cfg=cfg), tuple(primals), tangents)


def _bwd_batch(args, dims, *, cfg):
    """Every operand gets the batch axis (per-member gradients need per-member params); the step is vmapped."""
    size = next(x.shape[d] for x, d in zip(args, dims, strict=True) if d is not None)
    nz, na = cfg.nz, (cfg.nz if cfg.every else 0)
    stacked = set(range(2 * nz, 2 * nz + na))  # anchors: (slots, batch, ...)
    if cfg.save_every:
        stacked |= set(range(cfg.n_res + nz, cfg.n_res + 2 * nz))  # saved-state cotangents
    new = [_put(x, d, size, 1 if i in stacked else 0) for i, (x, d) in enumerate(zip(args, dims, strict=True))]
    # vmap over an Explicit mesh axis: an operand broadcast to the batch is split like the batched ones
    entry = next((batch_entry(x, d) for x, d in zip(args, dims, strict=True) if d is not None), None)
    new = [x if d is not None else shard_axis(x, 1 if i in stacked else 0, entry)
           for i, (x, d) in enumerate(zip(new, dims, strict=True))]  # fmt: skip
    step = _VmappedStep(cfg.step, (0,) * cfg.npar, 0)
    out = backward_p.bind(*new, cfg=dataclasses.replace(cfg, step=step))
    return out, [0] * len(out)


backward_p.def_impl(_bwd_impl)
backward_p.def_abstract_eval(_bwd_abstract_eval)
ad.primitive_jvps[backward_p] = _bwd_jvp
batching.primitive_batchers[backward_p] = _bwd_batch
mlir.register_lowering(backward_p, mlir.lower_fun(_bwd_impl, multiple_results=True))

# ---------------------------------------------------------------- registration
tangent_p.def_impl(_impl)
tangent_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[tangent_p] = _jvp
ad.primitive_transposes[tangent_p] = _transpose
batching.primitive_batchers[tangent_p] = _batch
mlir.register_lowering(tangent_p, mlir.lower_fun(_impl, multiple_results=True))
