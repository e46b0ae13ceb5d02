"""Default gradients on chaotic systems equal adjoint="direct" (1e-6, float64), where the plain reversible
adjoint is wrong; memory of the default stays flat in steps; reversible is refused for non-symmetric methods.

Each case first shows the failure of the unchecked reconstruction (adjoint="reversible"), then that the
default (adjoint=None -> "guarded") agrees with direct backprop, w.r.t. z0, a parameter closed over by H, dt.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax.adjoint import ADJOINTS, resolve, solve

jax.config.update("jax_enable_x64", True)


def rel(a, b):
    a, b = (jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(t)]) for t in (a, b))
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def double_pendulum(k):  # unit masses and lengths, k = g / l; non-separable: implicit midpoint
    def H(q, p):
        s, c = jnp.sin(q[0] - q[1]), jnp.cos(q[0] - q[1])
        return (p[0] ** 2 + 2 * p[1] ** 2 - 2 * p[0] * p[1] * c) / (2 * (1 + s**2)) - k * (
            2 * jnp.cos(q[0]) + jnp.cos(q[1])
        )

    return H


def heavy_top(mgl, inertia=(0.5, 3.0, 1.0)):  # (L, Gamma), H = sum L^2 / 2I + m g l Gamma . chi
    inertia, chi = jnp.asarray(inertia), jnp.array([0.0, 0.0, 1.0])
    return lambda L, G: 0.5 * jnp.sum(L**2 / inertia) + mgl * jnp.dot(G, chi)


def fpu_beta(beta):  # 8 masses, fixed ends, quartic springs
    def H(q, p):
        x = jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)])
        d = jnp.diff(x)
        return 0.5 * jnp.sum(p**2) + jnp.sum(0.5 * d**2 + 0.25 * beta * d**4)

    return H


def henon_heiles(lam):
    return lambda q, p: 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(q**2) + lam * (q[0] ** 2 * q[1] - q[1] ** 3 / 3)


def _hh_state(E=0.16, y=-0.1):
    v = 0.5 * y**2 - y**3 / 3
    return jnp.array([0.0, y]), jnp.array([np.sqrt(2 * (E - v)), 0.0])


_G = np.array([0.8, 0.1, 0.5]) / np.linalg.norm([0.8, 0.1, 0.5])
# name: (H(param), z0, param, dt, steps, options); steps chosen where "reversible" already fails
CASES = {
    "double_pendulum": (double_pendulum, (jnp.array([2.5, 3.0]), jnp.zeros(2)), 1.0, 0.02, 2000,
                        {"method": "implicit_midpoint"}),
    "heavy_top": (heavy_top, (jnp.array([0.5, 3.0, 1.0]), jnp.asarray(_G)), 10.0, 0.02, 1500, {"structure": "se3"}),
    "fpu_beta": (fpu_beta, (jnp.zeros(8), 4.0 * jnp.asarray(np.random.default_rng(1).normal(size=8))), 1.0, 0.05,
                 3000, {}),
    "henon_heiles": (henon_heiles, _hh_state(), 1.0, 0.05, 4000, {}),
}  # fmt: skip


def gradient(name, adjoint):
    make_H, z0, k, dt, steps, opts = CASES[name]

    def loss(z0, k, dt):
        a, b = tpjax.integrate(make_H(k), z0, dt=dt, steps=steps, adjoint=adjoint, **opts)
        return jnp.sum(a**2) + jnp.sum(jnp.sin(b))

    return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(z0, k, dt)


#: the two slowest cases (about 18 s each on 2 cores) run in `make test-slow`, which CI runs after `make test`.
SLOW_CASES = ("double_pendulum", "heavy_top")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES])
def test_default_gradient_matches_direct_on_chaotic_systems(name):
    ref = gradient(name, "direct")
    plain = [rel(a, b) for a, b in zip(gradient(name, "reversible"), ref, strict=True)]
    default = [rel(a, b) for a, b in zip(gradient(name, None), ref, strict=True)]
    print(f"\n{name}: rel. error (z0, param, dt) reversible {plain}, default {default}")
    assert max(plain) > 1e-4  # the case still exhibits the unchecked reconstruction's failure
    assert max(default) < 1e-6


def test_float32_lennard_jones_cluster():
    """64 atoms (4^3 lattice, spacing 1.12, random velocities), leapfrog, 1000 steps of 0.005: the float32
    default gradient is as close to the float64 truth as float32 direct backprop is (its round-off floor)."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    q0, p0 = 1.12 * grid + 0.02 * rng.normal(size=grid.shape), 0.5 * rng.normal(size=grid.shape)
    iu = np.triu_indices(64, 1)

    def step(eps, z, dt):  # kick-drift-kick with the LJ force; eps is the well depth
        def V(q):
            s6 = 1.0 / jnp.sum((q[iu[0]] - q[iu[1]]) ** 2, -1) ** 3
            return jnp.sum(4.0 * eps * (s6**2 - s6))

        q, p = z
        p = p - 0.5 * dt * jax.grad(V)(q)
        q = q + dt * p
        return q, p - 0.5 * dt * jax.grad(V)(q)

    def grad(adjoint, dtype):
        loss = lambda z, eps, dt: jnp.sum(solve(step, z, dt, eps, steps=1000, adjoint=adjoint)[0][:, 0])
        args = jax.tree.map(lambda x: jnp.asarray(x, dtype), ((q0, p0), 1.0, 0.005))
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)

    truth = grad("direct", jnp.float64)
    err = {a: max(rel(g, t) for g, t in zip(grad(a, jnp.float32), truth, strict=True)) for a in ("direct", "guarded")}
    print(f"\nLJ-64 float32 vs float64 truth, 1000 steps: {err}")
    assert err["guarded"] < max(2 * err["direct"], 1e-5)


def _pendulum_temp_bytes(steps, n=256):
    def loss(q0, k, dt):
        H = lambda q, p: jnp.sum(0.5 * p**2 - k * jnp.cos(q))
        q, _ = tpjax.integrate(H, (q0, jnp.zeros(n)), dt=dt, steps=steps, backend="xla")
        return jnp.sum(q**2)

    args = (jnp.linspace(-2.0, 2.0, n), jnp.asarray(1.0), jnp.asarray(0.01))
    return jax.jit(jax.grad(loss, (0, 1, 2))).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_default_gradient_memory_flat_in_steps():
    small, large = _pendulum_temp_bytes(2_000), _pendulum_temp_bytes(50_000)
    print(f"\npendulum x256 grad temp bytes: 2e3 steps {small}, 5e4 steps {large}")
    assert abs(large - small) <= 0.02 * small


def test_reversible_refused_for_non_symmetric_method():
    H = lambda q, p: 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))
    z0 = (jnp.array([1.0]), jnp.array([0.0]))
    for adjoint in ("reversible", "guarded"):
        with pytest.raises(ValueError, match=rf"adjoint='{adjoint}'.*'symplectic_euler'.*'checkpointed'"):
            tpjax.integrate(H, z0, dt=0.1, steps=10, method="symplectic_euler", adjoint=adjoint)
    assert resolve(None, symmetric=False, method_name="symplectic_euler") == "checkpointed"
    assert resolve(None, symmetric=True, method_name="leapfrog") == "guarded"
    assert resolve("direct", symmetric=False, method_name="symplectic_euler") == "direct"
    with pytest.raises(ValueError, match="adjoint must be None or one of"):
        resolve("backsolve", symmetric=True, method_name="leapfrog")
    assert set(ADJOINTS) == {"guarded", "reversible", "checkpointed", "direct"}


def test_float64_lennard_jones_cluster():
    """8 atoms in 2D (12-6 potential), 4000 leapfrog steps: the unchecked rebuild is off by ~4e-2, the default
    matches direct to well below 1e-6."""
    n = 8

    def H(q, p):
        x = q.reshape(n, 2)
        d = x[:, None, :] - x[None, :, :]
        r2 = jnp.sum(d**2, -1) + jnp.eye(n)
        inv6 = 1 / r2**3
        return 0.5 * jnp.sum(p**2) + 0.5 * jnp.sum(4 * (inv6**2 - inv6) * (1 - jnp.eye(n)))

    grid = np.stack(np.meshgrid(np.arange(3), np.arange(3), indexing="ij"), -1).reshape(-1, 2)[:n] * 1.15
    q0, p0 = jnp.asarray(grid.ravel()), jnp.asarray(np.random.default_rng(1).normal(size=2 * n) * 0.5)

    def g(adjoint):
        loss = lambda q: jnp.sum(tpjax.integrate(H, (q, p0), dt=0.005, steps=4000, adjoint=adjoint)[0] ** 2)
        return jax.jit(jax.grad(loss))(q0)

    direct = g("direct")
    assert rel(g("reversible"), direct) > 1e-4  # the failure the default guards against
    assert rel(g(None), direct) < 1e-6
