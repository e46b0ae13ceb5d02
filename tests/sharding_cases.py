"""Sharded tpjax runs vs unsharded ones, on 4 forced host devices (run by tests/test_sharding.py).

Run as a script in a fresh process (XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before jax
starts): for every case and every way of sharding, it prints one JSON line
``{"case", "mode", "equal", "spec", "error"}``: ``equal`` says whether the sharded result equals the
unsharded one bit for bit, ``spec`` is the output's PartitionSpec (as a string).
"""

from __future__ import annotations

import json
import sys
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import tpjax

N = 8  # ensemble members, 2 per device


def pendulum(k=1.0):
    return lambda q, p: 0.5 * jnp.sum(p**2) - k * jnp.sum(jnp.cos(q))


def kepler(q, p):
    return 0.5 * jnp.sum(p**2) - 1.0 / jnp.sqrt(jnp.sum(q**2))


def _ens(*shape):
    base = jnp.linspace(0.1, 1.0, N * int(np.prod(shape or (1,)))).reshape(N, *shape)
    return base.astype(jnp.float32)


def _kepler_state():
    q = jnp.concatenate([1.0 + 0.1 * _ens(1), 0.0 * _ens(1)], axis=1)
    p = jnp.concatenate([0.0 * _ens(1), 0.9 + 0.1 * _ens(1)], axis=1)
    return q, p


# Each case: (f, args, local). f maps the whole ensemble (leading axis N) to its result; under shard_map
# each shard runs `local` (f itself when None) on its slice. Cases with a `local` reduce over the ensemble.


def case_integrate():
    return jax.vmap(lambda q, p: tpjax.integrate(pendulum(), (q, p), dt=0.05, steps=40)), (_ens(), 0.3 * _ens()), None


def case_trajectory():
    f = jax.vmap(lambda q, p: tpjax.trajectory(pendulum(), (q, p), dt=0.05, steps=40, save_every=10).states)
    return f, (_ens(), 0.3 * _ens()), None


def case_grad_state():  # d/d(q0, p0, dt), one dt per member
    loss = lambda q, p, dt: jnp.sum(tpjax.integrate(pendulum(), (q, p), dt=dt, steps=40)[0] ** 2)
    return jax.vmap(jax.grad(loss, argnums=(0, 1, 2))), (_ens(), 0.3 * _ens(), 0.02 + 0.01 * _ens()), None


def case_per_member_dt_and_k():
    one = lambda q, p, dt, k: tpjax.integrate(pendulum(k), (q, p), dt=dt, steps=40)
    return jax.vmap(one), (_ens(), 0.3 * _ens(), 0.01 + 0.01 * _ens(), 1.0 + _ens()), None


def case_k_sweep_one_state():
    """One k per member, one initial state for all (closed over, not sharded): inside shard_map only the
    parameter varies over the mesh axis, so the loop's carry must be made to vary with it."""
    z0 = (jnp.float32(0.4), jnp.float32(0.1))
    return jax.vmap(lambda k: tpjax.integrate(pendulum(k), z0, dt=0.05, steps=40)), (1.0 + _ens(),), None


def case_kepler_grad_checkpointed():
    loss = lambda q, p: jnp.sum(tpjax.integrate(kepler, (q, p), dt=0.01, steps=30, adjoint="checkpointed")[0] ** 2)
    return jax.vmap(jax.grad(loss)), _kepler_state(), None


def case_loss_grad_replicated_k():
    """d/dk of a loss summed over the ensemble (reanchor: the anchors start from zeros); k is replicated."""

    def total(k, q, p):
        one = lambda q, p: tpjax.integrate(pendulum(k), (q, p), dt=0.05, steps=40, reanchor=8)[0]
        return jnp.sum(jax.vmap(one)(q, p) ** 2)

    k = jnp.float32(1.3)
    f = lambda q, p: jax.grad(total)(k, q, p)
    return f, (_ens(), 0.3 * _ens()), f  # in shard_map: the gradient of the shard's sum, psum-ed by JAX


def case_mean_energy_error():
    def err(q, p):
        sol = jax.vmap(lambda q, p: tpjax.trajectory(pendulum(), (q, p), dt=0.05, steps=40, save_every=10))(q, p)
        return jnp.mean(sol.energy_error)

    local = lambda q, p: jax.lax.pmean(err(q, p), "ens")  # equal shards: the mean of the shard means
    return err, (_ens(), 0.3 * _ens()), local


def _on_cuda(f):
    """``f`` with the executor choice told it runs on CUDA: the fused-kernel primitives are chosen (on a
    CPU they lower to their XLA reference, so this checks their sharding rules, not the kernels)."""
    from tpjax.executors import choice

    def g(*args):
        saved, choice.on_cuda = choice.on_cuda, lambda: True
        try:
            return f(*args)
        finally:
            choice.on_cuda = saved

    return g


def case_fused_trajectory():
    f = jax.vmap(lambda q, p: tpjax.trajectory(pendulum(), (q, p), dt=0.05, steps=40, save_every=10).states)
    return _on_cuda(f), (_ens(), 0.3 * _ens()), None


def case_fused_grad():
    loss = lambda q, p: jnp.sum(tpjax.integrate(pendulum(), (q, p), dt=0.05, steps=40)[0] ** 2)
    return _on_cuda(jax.vmap(jax.grad(loss, argnums=(0, 1)))), (_ens(), 0.3 * _ens()), None


def case_fused_k_sweep_one_state():
    f, args, _ = case_k_sweep_one_state()
    return _on_cuda(f), args, None


def case_fused_rigid_body():
    inertia = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    H = lambda L: 0.5 * jnp.sum(L**2 / inertia)
    f = jax.vmap(lambda L: tpjax.integrate(H, L, dt=0.01, steps=30, structure="so3", method="rigid_body"))
    return _on_cuda(f), (_ens(3),), None


CASES = {k[5:]: v for k, v in dict(globals()).items() if k.startswith("case_")}


def run_sharded(f, local, mode, mesh):
    if mode == "jit":
        return jax.jit(f)
    if local is None:
        return jax.jit(jax.shard_map(f, mesh=mesh, in_specs=P("ens"), out_specs=P("ens")))
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("ens"), out_specs=P()))


def spec_of(out):
    specs = {str(tuple(x.sharding.spec)) for x in jax.tree_util.tree_leaves(out)}
    return specs.pop() if len(specs) == 1 else str(sorted(specs))


def max_rel_diff(out, ref) -> float:
    d = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(ref), strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        d = max(d, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))) if a.size else 0.0)
    return d


def main(names):
    for name in names:
        f, args, local = CASES[name]()
        ref = jax.jit(f)(*args)
        for axis in ("explicit", "auto"):
            at = AxisType.Explicit if axis == "explicit" else AxisType.Auto
            mesh = jax.make_mesh((4,), ("ens",), axis_types=(at,))
            xs = jax.device_put(args, NamedSharding(mesh, P("ens")))
            for mode in ("jit", "shard_map"):
                row = {"case": name, "mode": f"{axis}/{mode}", "reduces": local is not None, "equal": False,
                       "rel_diff": None, "spec": None, "error": None}  # fmt: skip
                try:
                    with jax.set_mesh(mesh):
                        out = run_sharded(f, local, mode, mesh)(*xs)
                    row["spec"] = spec_of(out)
                    row["rel_diff"] = max_rel_diff(out, ref)
                    row["equal"] = row["rel_diff"] == 0.0
                except Exception as e:  # reported, and the test fails on it
                    row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
                    traceback.print_exc(file=sys.stderr)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
