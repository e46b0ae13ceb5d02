"""Hamiltonian neural network vs. a plain MLP vector field, trained through short rollouts.

Data: the pendulum H(q, p) = p^2 / 2 - cos q (g / l = 1), several trajectories from random initial
conditions (librations), ground truth by tpjax leapfrog with a 10x finer step than the model step.

Model A (HNN): a *separable* learned Hamiltonian H_theta(q, p) = T_theta(p) + V_theta(q), two small
tanh MLPs (1 -> 32 -> 32 -> 1). Separable so that tpjax's explicit leapfrog applies (a general MLP
H(q, p) would need method="implicit_midpoint", i.e. a fixed-point solve per step, much slower). Rolled
out with ``tpjax.trajectory`` (leapfrog, gradient by the reversible adjoint).
Model B (MLP): a vector field f_theta(q, p) -> (qdot, pdot), a tanh MLP (2 -> 32 -> 32 -> 2),
integrated by an explicit RK2 (Heun) ``lax.scan`` with the same step and number of steps.

Both are trained identically (adam, same iterations, same data): from every window start in the data,
roll out ``horizon`` steps and match the ``horizon`` data states (MSE). Evaluation on held-out initial
conditions over a long rollout: RMSE of (q, p) against ground truth, and the energy drift -- the true
pendulum energy E = p^2 / 2 + (1 - cos q) (shifted to be >= 0 so the ratio is well defined) of the
predicted states, max over time of |E(t) - E(0)| / E(0), averaged over the held-out set.

Run: ``python -m examples.hnn_vs_mlp``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax

import tpjax


def true_H(q, p):
    return jnp.sum(0.5 * p**2 - jnp.cos(q))


def true_energy(q, p):
    """Shifted pendulum energy (minimum 0), elementwise."""
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def sample_ics(key, n):
    kq, kp = jax.random.split(key)
    return jax.random.uniform(kq, (n,), minval=-1.5, maxval=1.5), jax.random.uniform(kp, (n,), minval=-0.8, maxval=0.8)


def ground_truth(q0, p0, *, dt, steps, refine=10):
    """(Q, P) of shape (batch, steps + 1) at spacing dt, by leapfrog with step dt / refine."""

    def one(q, p):
        sol = tpjax.trajectory(true_H, (q, p), dt=dt / refine, steps=steps * refine, save_every=refine)
        return sol.states

    return jax.vmap(one)(q0, p0)


# ---------------------------------------------------------------- small MLPs
def init_mlp(key, sizes):
    params = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        params.append((jax.random.normal(k, (a, b)) * jnp.sqrt(1.0 / a), jnp.zeros(b)))
    return params


def mlp(params, x):
    for W, b in params[:-1]:
        x = jnp.tanh(x @ W + b)
    W, b = params[-1]
    return x @ W + b


# ---------------------------------------------------------------- model A: separable HNN + tpjax leapfrog
def hnn_H(theta):
    def H(q, p):
        T = mlp(theta["T"], p.reshape(-1, 1))
        V = mlp(theta["V"], q.reshape(-1, 1))
        return jnp.sum(T) + jnp.sum(V)

    return H


def hnn_rollout(theta, q0, p0, *, dt, steps):
    """Predicted (Q, P), shape (steps + 1,) each, initial state first."""
    return tpjax.trajectory(hnn_H(theta), (q0, p0), dt=dt, steps=steps).states


# ---------------------------------------------------------------- model B: MLP vector field + RK2 scan
def mlp_rollout(theta, q0, p0, *, dt, steps):
    def f(z):
        return mlp(theta, z)

    def step(z, _):
        k1 = f(z)
        k2 = f(z + dt * k1)
        z = z + 0.5 * dt * (k1 + k2)
        return z, z

    z0 = jnp.stack([q0, p0])
    _, zs = jax.lax.scan(step, z0, None, length=steps)
    zs = jnp.concatenate([z0[None], zs])
    return zs[:, 0], zs[:, 1]


# ---------------------------------------------------------------- training / evaluation
def windows(Q, P, horizon):
    """All (start, next ``horizon`` states) windows: q0, p0 of shape (W,), targets (W, horizon + 1)."""
    n = Q.shape[1] - horizon
    idx = jnp.arange(n)[:, None] + jnp.arange(horizon + 1)[None, :]
    Qw, Pw = Q[:, idx].reshape(-1, horizon + 1), P[:, idx].reshape(-1, horizon + 1)
    return Qw, Pw


def train(rollout, theta, Qw, Pw, *, dt, horizon, iters, lr):
    opt = optax.adam(lr)
    state = opt.init(theta)

    def loss(theta):
        Qs, Ps = jax.vmap(lambda q, p: rollout(theta, q, p, dt=dt, steps=horizon))(Qw[:, 0], Pw[:, 0])
        return jnp.mean((Qs - Qw) ** 2) + jnp.mean((Ps - Pw) ** 2)

    @jax.jit
    def update(theta, state):
        val, g = jax.value_and_grad(loss)(theta)
        upd, state = opt.update(g, state, theta)
        return optax.apply_updates(theta, upd), state, val

    losses = []
    for _ in range(iters):
        theta, state, val = update(theta, state)
        losses.append(float(val))
    losses.append(float(jax.jit(loss)(theta)))
    return theta, losses


def evaluate(rollout, theta, q0, p0, Qt, Pt, *, dt, steps):
    Qs, Ps = jax.jit(jax.vmap(lambda q, p: rollout(theta, q, p, dt=dt, steps=steps)))(q0, p0)
    rmse = float(jnp.sqrt(jnp.mean((Qs - Qt) ** 2 + (Ps - Pt) ** 2)))
    E = true_energy(Qs, Ps)
    rel = jnp.abs(E - E[:, :1]) / E[:, :1]
    drift = jnp.where(jnp.isfinite(rel), rel, jnp.inf).max(axis=1)
    return {
        "rollout_rmse": rmse,
        "energy_drift": float(drift.mean()),
        "energy_drift_final": float(rel[:, -1].mean()),
    }


def main(iters: int = 2000, *, n_train: int = 16, n_test: int = 8, data_steps: int = 60, horizon: int = 10,
         rollout_steps: int = 500, dt: float = 0.1, lr: float = 3e-3, width: int = 32, seed: int = 0,
         verbose: bool = True) -> dict:  # fmt: skip
    """Train both models and evaluate on held-out initial conditions; returns a dict of the numbers."""
    t0 = time.perf_counter()
    k_tr, k_te, k_a1, k_a2, k_b = jax.random.split(jax.random.PRNGKey(seed), 5)
    Q, P = ground_truth(*sample_ics(k_tr, n_train), dt=dt, steps=data_steps)
    Qw, Pw = windows(Q, P, horizon)
    q_te, p_te = sample_ics(k_te, n_test)
    Qt, Pt = ground_truth(q_te, p_te, dt=dt, steps=rollout_steps)

    kw = dict(dt=dt, horizon=horizon, iters=iters, lr=lr)
    theta_a = {"T": init_mlp(k_a1, [1, width, width, 1]), "V": init_mlp(k_a2, [1, width, width, 1])}
    theta_b = init_mlp(k_b, [2, width, width, 2])

    res = {"n_windows": int(Qw.shape[0])}
    for name, rollout, theta in (("hnn", hnn_rollout, theta_a), ("mlp", mlp_rollout, theta_b)):
        t = time.perf_counter()
        theta, losses = train(rollout, theta, Qw, Pw, **kw)
        ev = evaluate(rollout, theta, q_te, p_te, Qt, Pt, dt=dt, steps=rollout_steps)
        res[name] = {"loss_initial": losses[0], "loss_final": losses[-1], "losses": losses, **ev,
                     "train_s": time.perf_counter() - t}  # fmt: skip
    res["wall_s"] = time.perf_counter() - t0
    if verbose:
        print(
            f"pendulum, {n_train} train trajectories ({res['n_windows']} windows of {horizon} steps, "
            f"dt={dt}), {iters} adam iters; {n_test} held-out ICs, {rollout_steps}-step rollout"
        )
        for name in ("hnn", "mlp"):
            r = res[name]
            print(f"  {name.upper():3s}: loss {r['loss_initial']:.3e} -> {r['loss_final']:.3e}  "
                  f"rollout RMSE {r['rollout_rmse']:.3e}  energy drift max {r['energy_drift']:.3e} "
                  f"final {r['energy_drift_final']:.3e}  ({r['train_s']:.1f} s)")  # fmt: skip
        print(f"  wall {res['wall_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
