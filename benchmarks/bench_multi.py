"""Weak and strong scaling of a sharded ensemble (pendulums, Kepler problems) over 1, 2, 4, 8 devices.

Each run is ``jax.jit(jax.vmap(tpjax.integrate))`` on an ensemble sharded along a one-axis mesh
(``jax.make_mesh((n,), ("ens",))``, Explicit axes) of the first n devices present: GPUs when there are
several, else CPU devices (``--force-host-devices K`` makes K of them, via XLA_FLAGS, before jax starts).
Each configuration is compiled once, then timed over ``--repeats`` runs with ``block_until_ready``; the
median is reported (no profiler).

- weak scaling: ``--per-device`` members on every device (N = n x per-device); efficiency = t(1) / t(n).
- strong scaling: ``--total`` members split over n devices; efficiency = t(1) / (n t(n)).

Forced host devices share the machine's CPU cores, so on a CPU the efficiencies measure the overhead of
sharding, not a speed-up beyond the physical cores.

Run: ``JAX_PLATFORMS=cpu python benchmarks/bench_multi.py --force-host-devices 4`` (CPU), or
``python benchmarks/bench_multi.py`` on a multi-GPU host.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force-host-devices", type=int, default=None, help="make K CPU devices (sets XLA_FLAGS)")
    ap.add_argument("--devices", default="1,2,4,8", help="device counts to try (those present are run)")
    ap.add_argument("--per-device", type=int, default=2**14, help="weak scaling: members per device")
    ap.add_argument("--total", type=int, default=2**16, help="strong scaling: members in all")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    return ap.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.force_host_devices:  # before jax initialises its backends
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.force_host_devices}"
    ).strip()

import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import tpjax  # noqa: E402


def pendulum(q, p):
    return 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))


def kepler(q, p):
    return 0.5 * jnp.sum(p**2) - 1.0 / jnp.sqrt(jnp.sum(q**2))


def ensemble(name: str, n: int):
    """Initial states of n members: pendulum angles in (0.1, 1.5); Kepler orbits of eccentricity <= 0.3."""
    u = jnp.linspace(0.0, 1.0, n, dtype=jnp.float32)
    if name == "pendulum":
        return 0.1 + 1.4 * u, jnp.zeros(n, jnp.float32)
    e = 0.3 * u
    q = jnp.stack([1.0 - e, jnp.zeros(n, jnp.float32)], axis=1)
    p = jnp.stack([jnp.zeros(n, jnp.float32), jnp.sqrt((1.0 + e) / (1.0 - e))], axis=1)
    return q, p


SYSTEMS = {"pendulum": (pendulum, 0.01), "kepler": (kepler, 0.001)}


def time_run(name: str, n_members: int, n_devices: int, steps: int, repeats: int) -> float:
    """Median seconds of one sharded run (compiled once beforehand)."""
    H, dt = SYSTEMS[name]
    mesh = jax.make_mesh((n_devices,), ("ens",), devices=jax.devices()[:n_devices])
    state = jax.device_put(ensemble(name, n_members), NamedSharding(mesh, P("ens")))
    f = jax.jit(jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=dt, steps=steps)))
    with jax.set_mesh(mesh):
        run = f.lower(*state).compile()
        out = run(*state)
        jax.block_until_ready(out)
        assert out[0].sharding.spec[0] == "ens", f"the result lost the ensemble sharding: {out[0].sharding}"
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(run(*state))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {os.cpu_count()} cores" if names else platform.processor()
    except OSError:
        return platform.processor()


def main(args) -> int:
    present = len(jax.devices())
    counts = [int(c) for c in args.devices.split(",") if int(c) <= present]
    if len(counts) < 2:
        print(f"only {present} device(s) present; use --force-host-devices on a CPU", file=sys.stderr)
    dev = jax.devices()[0]
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{dev.platform}:{getattr(dev, 'device_kind', '?')} x{present}  jax {jax.__version__}  "
          f"steps={args.steps} repeats={args.repeats} float32")  # fmt: skip
    print(f"# host CPU: {cpu_model()}")
    print("| system | scaling | devices | members | members/device | ms (median) | efficiency |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in SYSTEMS:
        for scaling in ("weak", "strong"):
            base = None
            for n in counts:
                members = args.per_device * n if scaling == "weak" else args.total
                if members % n:
                    continue
                t = time_run(name, members, n, args.steps, args.repeats)
                base = t if base is None else base
                eff = base / t if scaling == "weak" else base / (n * t)
                print(f"| {name} | {scaling} | {n} | {members} | {members // n} | {1e3 * t:.2f} | {eff:.2f} |",
                      flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
