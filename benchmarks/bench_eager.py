"""Eager-call overhead: first call, second call (cached runner) and the same call jitted.

    JAX_PLATFORMS=cpu python benchmarks/bench_eager.py

Each timing blocks on the result; "second" and "jitted" are medians over repeated calls.
"""

import statistics
import time

import jax
import jax.numpy as jnp

import tpjax


def pendulum(q, p):
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))


def rigid(L):
    return jnp.sum(L**2 / jnp.array([2.0, 4.0, 6.0]))


CASES = {
    "pendulum (3,) leapfrog, 100 steps": (pendulum, (jnp.ones(3), jnp.zeros(3)), {}),
    "pendulum (1024,) leapfrog, 100 steps": (pendulum, (jnp.ones(1024), jnp.zeros(1024)), {}),
    "rigid body so3 default, 100 steps": (rigid, jnp.array([1.0, 0.1, 0.5]), {"structure": "so3"}),
}


def once(f) -> float:
    t = time.perf_counter()
    jax.block_until_ready(f())
    return time.perf_counter() - t


def median(f, n=200) -> float:
    return statistics.median(once(f) for _ in range(n))


def main():
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")
    print("| case | first call | second call | jitted call | second / jitted |\n|---|---|---|---|---|")
    for name, (H, state, kw) in CASES.items():
        run = lambda s, dt: tpjax.integrate(H, s, dt=dt, steps=100, **kw)  # noqa: E731, B023
        first = once(lambda: run(state, 0.01))  # noqa: B023
        second = median(lambda: run(state, 0.02))  # noqa: B023 (a new dt: still no recompilation)
        jitted = jax.jit(run)
        jitted(state, 0.01)
        jt = median(lambda: jitted(state, 0.02))  # noqa: B023
        print(f"| {name} | {first * 1e3:.0f} ms | {second * 1e3:.3f} ms | {jt * 1e3:.3f} ms | {second / jt:.1f}x |")


if __name__ == "__main__":
    main()
