"""The tile form of the fused kernel against the unrolled form, the XLA loop and a user's scan (GPU).

For systems too long to unroll (FPU chains of d = 128 and 256, Lennard-Jones clusters of 32 and 64 atoms)
and two that the unrolled form also writes (FPU d = 32, Lennard-Jones 6 atoms), side by side in one run:
  scan u*    a hand-written ``lax.scan`` leapfrog (``bench_zoo.user_scan``) at the listed unrolls;
  xla        ``tpjax.integrate(backend="xla")`` (what the default ran before the tile form);
  unrolled   the unrolled kernel, where it exists;
  tile bB wW the tile form at B systems per program and W warps (``codegen.triton.fused_integrate``);
  default    ``tpjax.integrate`` with default arguments.
float32, leapfrog, medians of REPS timed runs after two warm-ups, ms.

Run:  PYTHONPATH=. python benchmarks/bench_tile.py      (TILE_CASES=fpu_d128,lj_32 selects cases;
      TILE_SCALE=0.01 scales the ensembles, e.g. for a CPU smoke run where the kernels report n/a)
      writes $OUT/bench_tile.md when OUT is set
"""

from __future__ import annotations

import datetime
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tpjax  # noqa: E402
from benchmarks._timing import median_ms, report  # noqa: E402
from benchmarks.bench_zoo import (  # noqa: E402
    _ensemble,
    kinetic,
    lattice,
    user_scan,
    v_fpu,
    v_gravity,
    v_lennard_jones,
    v_mlp,
)
from tpjax.codegen import triton as TG  # noqa: E402

REPS = 5


def case(name, V, shape, n, steps, dt, q0, unrolls):
    return {"name": name, "V": V, "shape": shape, "n": n, "steps": steps, "dt": dt, "q0": q0, "p0": np.zeros(shape),
            "flat": False, "unrolls": unrolls}  # fmt: skip


CASES = [
    case("fpu_d32", v_fpu, (32,), 65_536, 1000, 0.05, np.sin(np.arange(1, 33) * 0.1), (1, 10)),
    case("fpu_d64", v_fpu, (64,), 32_768, 1000, 0.05, np.sin(np.arange(1, 65) * 0.05), (1, 10)),
    case("fpu_d128", v_fpu, (128,), 16_384, 1000, 0.05, np.sin(np.arange(1, 129) * 0.03), (1, 10)),
    case("fpu_d256", v_fpu, (256,), 8_192, 1000, 0.05, np.sin(np.arange(1, 257) * 0.02), (1, 10)),
    case("lj_6", v_lennard_jones(), (6, 2), 262_144, 1000, 0.002, lattice(6, 2), (1, 10)),
    case("lj_32", v_lennard_jones(), (32, 2), 16_384, 200, 0.002, lattice(32, 2), (1, 2)),
    case("lj_64", v_lennard_jones(), (64, 2), 4_096, 200, 0.002, lattice(64, 2), (1, 2)),
    # past the unrolled form's state rule (48 elements) with ops the tile form does not write (index-array
    # gathers, dot_general): the default runs the XLA loop; these rows measure that rule against the
    # unrolled kernel forced
    case("gravity_20", v_gravity, (20, 3), 16_384, 500, 0.001, lattice(20, 3, 2.0), (1, 10)),
    case("mlp_d64", v_mlp(width=32, d=64), (64,), 65_536, 200, 0.01, np.ones(64) * 0.1, (1, 10)),
]
TILE_CONFIGS = {"fpu": [(2, 4), (4, 4), (8, 4), (4, 8)], "lj": [(2, 8), (4, 8), (8, 8), (4, 4)]}
#: the shorter sweep of a second run (TILE_SWEEP=short): the chosen configuration and its neighbour
SHORT_CONFIGS = {"fpu": [(4, 4), (8, 4)], "lj": [(4, 4), (4, 8)]}


def attempt(fn, *args):
    try:
        return median_ms(fn, *args, reps=REPS)
    except Exception as e:  # a variant that does not lower is reported, not fatal
        return f"n/a ({type(e).__name__}: {str(e)[:60]})"


def variants(c):
    V, dt, steps = c["V"], c["dt"], c["steps"]
    H = lambda q, p: kinetic(p) + V(q)
    z = jnp.zeros(c["shape"], jnp.float32)
    comp = tpjax.compile(H, (z, z))
    out = {f"scan u{u}": user_scan(c, u) for u in c["unrolls"]}
    out["xla"] = jax.jit(jax.vmap(lambda q, p: tuple(tpjax.integrate(H, (q, p), dt=dt, steps=steps, backend="xla"))))
    try:
        TG.generate(comp, form="unrolled")
        out["unrolled"] = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, dt, steps, form="unrolled"))
    except NotImplementedError:
        pass
    configs = SHORT_CONFIGS if os.environ.get("TILE_SWEEP") == "short" else TILE_CONFIGS
    for b, w in configs.get(c["name"].split("_")[0], []):  # no tile form for probed ops
        out[f"tile b{b} w{w}"] = jax.jit(
            lambda q, p, b=b, w=w: TG.fused_integrate(comp, q, p, dt, steps, form="tile", block=b, num_warps=w)
        )
    out["default"] = jax.jit(jax.vmap(lambda q, p: tuple(tpjax.integrate(H, (q, p), dt=dt, steps=steps))))
    return out


def main():
    want = os.environ.get("TILE_CASES")
    dev = jax.devices()[0]
    lines = [
        f"# bench_tile, {datetime.date.today()}, {dev.device_kind} ({jax.default_backend()}), jax {jax.__version__}",
        "",
    ]
    for c in [c for c in CASES if not want or c["name"] in want.split(",")]:
        rng = np.random.default_rng(0)
        c = dict(c, n=max(1, int(c["n"] * float(os.environ.get("TILE_SCALE", "1")))))
        q = _ensemble(rng, c["q0"], c["n"], 0.02)
        p = _ensemble(rng, c["p0"], c["n"], 0.02)
        row = {}
        for name, fn in variants(c).items():
            row[name] = attempt(fn, q, p)
            print(
                f"  {c['name']}: {name} {row[name] if isinstance(row[name], str) else f'{row[name]:.3f}'} ms",
                flush=True,
            )
        users = [v for k, v in row.items() if k.startswith("scan") and isinstance(v, float)]
        best = min(users) if users else float("nan")
        lines.append(f"## {c['name']}: {c['n']} x {c['steps']} (best user scan {best:.3f} ms)")
        lines += ["| variant | ms | best user / variant |", "|---|---:|---:|"]
        for k, v in row.items():
            lines.append(f"| {k} | {v:.3f} | {best / v:.2f}x |" if isinstance(v, float) else f"| {k} | {v} | - |")
        lines.append("")
    report("bench_tile.md", "\n".join(lines))


if __name__ == "__main__":
    main()
