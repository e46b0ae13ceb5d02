"""The zoo benchmark: what users write against tpjax's default path, side by side in one run.

For every case the same leapfrog run (float32, fixed dt) is timed as
  scan u1 / u10 / u50  a hand-written ``lax.scan`` leapfrog with ``jax.grad`` (unroll 1, 10, 50), what users
                       write; "best" is the fastest of the three;
  pallas               (GPU) an expert's Pallas kernel: plain jnp leapfrog in a ``fori_loop`` on a block of
                       systems held in registers, ``jax.grad`` of the potential inside the body;
  diffrax              (where it applies) diffrax's SemiImplicitEuler on the same dt -- symplectic Euler, one
                       force per step like FSAL leapfrog, so the cost is comparable (the order is not);
  tpjax                ``tpjax.integrate`` with default arguments (backend="auto");
and, for the gradient cases, ``jax.grad`` of sum(q_final^2) w.r.t. the initial q: through the user's scan
(unroll 10) and through tpjax's default adjoint. Median of REPS timed runs after two warm-ups, ms.
``tpjax / best`` > 1 means tpjax is faster than the user's best. ``%peak``: achieved FP32 rate of the tpjax
run when it runs the fused kernel, counting the TP-IR step's arithmetic (FMA = 2 flops, ELEM = 1).

Run:  PYTHONPATH=. python benchmarks/bench_zoo.py            (GPU sizes on a GPU, small sizes on a CPU)
      ZOO_CASES=pendulum_vmap,kepler  selects cases; ZOO_SCALE=0.25 scales every ensemble size;
      ZOO_GRAD_ONLY=1 times only tpjax's forward and the gradient columns;
      ZOO_UNROLLS=1,10  the user-scan unrolls timed (default: 1,10,50, fewer where XLA's compile is slow)
      writes $OUT/bench_zoo.md when OUT is set
"""

from __future__ import annotations

import ast
import datetime
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tpjax  # noqa: E402
from benchmarks._timing import median_ms, report  # noqa: E402

GPU = jax.default_backend() == "gpu"
REPS = 5
PEAK_FP32 = 67e12  # H100/H200 SXM FP32 non-tensor


# ---- the zoo: per-system Hamiltonians H = T(p) + V(q) -----------------------------------------------------
def kinetic(p):
    return 0.5 * jnp.sum(p**2)


def v_pendulum(q):
    return -jnp.sum(jnp.cos(q))


def v_harmonic(q):
    return 0.5 * jnp.sum(q**2)


def v_kepler(q):
    return -1.0 / jnp.sqrt(jnp.sum(q**2))


def v_fpu(q, alpha=0.25):
    x = jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)])
    d = x[1:] - x[:-1]
    return jnp.sum(0.5 * d**2 + alpha / 3.0 * d**3)


def v_lennard_jones(rc=2.5):
    def V(q):  # q: (n, 2); a distance matrix, the 12-6 potential cut off at rc
        d = q[:, None, :] - q[None, :, :]
        r2 = jnp.sum(d**2, axis=-1) + jnp.eye(q.shape[0], dtype=q.dtype)  # no self-distance
        inv6 = 1.0 / r2**3
        e = 4.0 * (inv6**2 - inv6)
        mask = (r2 < rc**2) & ~jnp.eye(q.shape[0], dtype=bool)
        return 0.5 * jnp.sum(jnp.where(mask, e, 0.0))

    return V


def v_gravity(q):  # q: (5, 3), unit masses, G = 1
    i, j = np.triu_indices(q.shape[0], 1)
    return -jnp.sum(1.0 / jnp.sqrt(jnp.sum((q[i] - q[j]) ** 2, axis=-1) + 1e-6))


def v_mlp(key=0, width=64, d=4):
    k1, k2 = jax.random.split(jax.random.PRNGKey(key))
    W1 = jax.random.normal(k1, (d, width), jnp.float32) / np.sqrt(d)
    w2 = jax.random.normal(k2, (width,), jnp.float32) / np.sqrt(width)

    def V(q):
        return jnp.dot(jnp.tanh(q @ W1), w2) + 0.5 * jnp.sum(q**2)

    return V


def lattice(n, dim, spacing=1.12):
    side = int(np.ceil(n ** (1 / dim)))
    pts = np.stack(np.meshgrid(*[np.arange(side)] * dim, indexing="ij"), -1).reshape(-1, dim)[:n]
    return (pts * spacing).astype(np.float32)


def case(name, V, shape, n_gpu, n_cpu, steps, dt, q0, p0, grad=False, flat=False, unrolls=(1, 10, 50)):
    return {"name": name, "V": V, "shape": shape, "n": n_gpu if GPU else n_cpu, "steps": steps, "dt": dt,
            "q0": q0, "p0": p0, "grad": grad, "flat": flat, "unrolls": unrolls}  # fmt: skip


def _ensemble(rng, base, n, jitter):
    base = np.asarray(base, np.float32)
    return jnp.asarray(base[None] + jitter * rng.standard_normal((n, *base.shape)).astype(np.float32))


def vmapped_final_q(c):
    """(run, (q, p)) for a vmapped case: ``run(**kw)`` maps the ensemble's (q, p) to the final q of
    ``tpjax.integrate`` with ``kw``; (q, p) the case's seeded ensemble (what the gradient benches differentiate)."""
    V, dt, steps = c["V"], c["dt"], c["steps"]
    H = lambda q, p: kinetic(p) + V(q)
    rng = np.random.default_rng(0)
    q, p = _ensemble(rng, c["q0"], c["n"], 0.02), _ensemble(rng, c["p0"], c["n"], 0.02)
    return (lambda **kw: jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=dt, steps=steps, **kw)[0])), (q, p)


CASES = [
    case("pendulum_vmap", v_pendulum, (), 4_194_304, 65_536, 1000, 0.01, 1.0, 0.0, grad=True),
    case("pendulum_flat", v_pendulum, (), 4_194_304, 65_536, 1000, 0.01, 1.0, 0.0, flat=True),
    case("harmonic", v_harmonic, (), 4_194_304, 65_536, 1000, 0.01, 1.0, 0.0),
    case("kepler", v_kepler, (2,), 1_048_576, 16_384, 1000, 0.005, [1.0, 0.0], [0.0, 1.2], grad=True),
    case("fpu_d8", v_fpu, (8,), 262_144, 4_096, 1000, 0.05, np.sin(np.arange(1, 9) * 0.4), np.zeros(8), grad=True),
    case("fpu_d32", v_fpu, (32,), 65_536, 1_024, 1000, 0.05, np.sin(np.arange(1, 33) * 0.1), np.zeros(32)),
    case("fpu_d128", v_fpu, (128,), 16_384, 256, 1000, 0.05, np.sin(np.arange(1, 129) * 0.03), np.zeros(128)),
    case("lj_6", v_lennard_jones(), (6, 2), 262_144, 2_048, 1000, 0.002, lattice(6, 2), np.zeros((6, 2)), grad=True),
    case(
        "lj_32", v_lennard_jones(), (32, 2), 16_384, 128, 200, 0.002, lattice(32, 2), np.zeros((32, 2)), unrolls=(1, 10)
    ),  # unroll 50 of a 32-atom distance matrix: XLA's compile does not finish in minutes
    case("gravity_5", v_gravity, (5, 3), 262_144, 2_048, 1000, 0.001, np.eye(5, 3) * 2.0, np.zeros((5, 3))),
    case("mlp_64", v_mlp(), (4,), 65_536, 2_048, 200, 0.01, np.ones(4) * 0.5, np.zeros(4), unrolls=(1, 10), grad=True),
]


GRAD_ONLY = os.environ.get("ZOO_GRAD_ONLY") == "1"


def timeit(fn, *args):
    return median_ms(fn, *args, reps=REPS)


# ---- the variants --------------------------------------------------------------------------------------
def user_scan(c, unroll):
    V, dt, steps = c["V"], c["dt"], c["steps"]
    force = jax.grad(lambda q: jnp.sum(V(q))) if c["flat"] else jax.vmap(jax.grad(V))
    vel = jax.grad(lambda p: jnp.sum(kinetic(p))) if c["flat"] else jax.vmap(jax.grad(kinetic))

    def run(q, p):
        def step(s, _):
            q, p = s
            p = p - 0.5 * dt * force(q)
            q = q + dt * vel(p)
            p = p - 0.5 * dt * force(q)
            return (q, p), None

        return jax.lax.scan(step, (q, p), None, length=steps, unroll=unroll)[0]

    return jax.jit(run)


def tpjax_run(c, **kw):
    V, dt, steps = c["V"], c["dt"], c["steps"]
    if c["flat"]:
        H = lambda q, p: jnp.sum(0.5 * p**2) + jnp.sum(V(q))
        return jax.jit(lambda q, p: tuple(tpjax.integrate(H, (q, p), dt=dt, steps=steps, **kw)))
    H = lambda q, p: kinetic(p) + V(q)
    return jax.jit(jax.vmap(lambda q, p: tuple(tpjax.integrate(H, (q, p), dt=dt, steps=steps, **kw))))


def pallas_run(c, block=256, interpret=False):
    """An expert's Pallas kernel: the ensemble in structure-of-arrays layout (D, N) -- D = components per
    system, so a block (D, block) reads coalesced rows -- leapfrog in a ``fori_loop`` with the state in
    registers and ``jax.grad`` of the user's potential (vmapped over the block's systems) in the body."""
    from jax.experimental import pallas as pl

    V, dt, steps, shape = c["V"], c["dt"], c["steps"], c["shape"]
    D = int(np.prod(shape, dtype=int))
    grad_v = jax.vmap(jax.grad(V), in_axes=-1, out_axes=-1)

    def force(q):  # q: (D, block) -> (D, block)
        return grad_v(q.reshape(*shape, q.shape[-1])).reshape(q.shape)

    def kernel(q_ref, p_ref, qo_ref, po_ref):
        def body(_, s):
            q, p = s
            p = p - 0.5 * dt * force(q)
            q = q + dt * p
            p = p - 0.5 * dt * force(q)
            return q, p

        q, p = jax.lax.fori_loop(0, steps, body, (q_ref[...], p_ref[...]))
        qo_ref[...], po_ref[...] = q, p

    def run(q, p):  # q, p: (D, N)
        spec = pl.BlockSpec((D, block), lambda i: (0, i))
        out = jax.ShapeDtypeStruct(q.shape, q.dtype)
        return pl.pallas_call(kernel, out_shape=(out, out), grid=(q.shape[1] // block,), in_specs=[spec, spec],
                              out_specs=(spec, spec), interpret=interpret)(q, p)  # fmt: skip

    return jax.jit(run)


def pallas_best(c, q, p):
    """The expert's kernel at its best block size (in SoA layout, converted once outside the timing)."""
    soa = lambda x: x.reshape(x.shape[0], -1).T
    qs, ps = soa(q), soa(p)
    times = [attempt(pallas_run(c, block), qs, ps) for block in (128, 512)]
    ok = [t for t in times if isinstance(t, float)]
    return min(ok) if ok else times[0]


def diffrax_run(c):
    import diffrax

    V, dt, steps = c["V"], c["dt"], c["steps"]
    force = jax.vmap(jax.grad(V))
    terms = (diffrax.ODETerm(lambda t, p, a: p), diffrax.ODETerm(lambda t, q, a: -force(q)))

    def run(q, p):
        sol = diffrax.diffeqsolve(terms, diffrax.SemiImplicitEuler(), 0.0, steps * dt, dt, (q, p), max_steps=steps,
                                  saveat=diffrax.SaveAt(t1=True))  # fmt: skip
        return sol.ys[0][-1], sol.ys[1][-1]

    return jax.jit(run)


def grad_of(run):
    return jax.jit(jax.grad(lambda q, p: jnp.sum(run(q, p)[0] ** 2)))


def fused_flops(c):
    """Arithmetic of the generated kernel's time loop per step, counted on its source: each binary + - *
    / and each function call is one flop (a contracted a * b + c is two), so the probed dot products and
    selects of OPAQUE ops count too; times systems and steps. None when no fused kernel runs."""
    from tpjax.codegen import triton as tg
    from tpjax.executors import kernel_for

    H = lambda q, p: kinetic(p) + V(q)
    V = c["V"]
    z = jnp.zeros(c["shape"], jnp.float32)
    comp = tpjax.compile(H, (z, z))
    executor, why = kernel_for(comp, False)
    if why or c["flat"]:
        return None
    src = tg.generate(executor.kernel_comp or comp)
    body = src.split("for _ in range(n_steps):", 1)[1].split("# ---- end of time loop", 1)[0]
    flops = 0
    for ln in body.splitlines():
        code = ln.split("#", 1)[0].strip()
        if "=" in code:
            flops += _flops(ast.parse(code.split("=", 1)[1].strip(), mode="eval"))
    return flops * c["n"] * c["steps"]


_FREE = ("where", "full", "to", "poisson_j_pass", "poisson_j_negate")  # selects, constants, casts, signs
_CALL_FLOPS = {"symp_step": 2}  # one fma


def _flops(tree) -> int:
    """Arithmetic in one generated statement: binary + - * / count 1, function calls 1 (symp_step 2),
    selects, casts and constants 0."""
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            n += 1
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            n += 0 if name in _FREE else _CALL_FLOPS.get(name, 1)
    return n


def attempt(fn, *args):
    try:
        return timeit(fn, *args)
    except Exception as e:  # a variant that does not lower (e.g. Pallas without slices) is reported, not fatal
        return f"n/a ({type(e).__name__})"


def bench(c, scale):
    rng = np.random.default_rng(0)
    n = max(256, int(c["n"] * scale) // 256 * 256)
    c = dict(c, n=n)
    q = _ensemble(rng, np.broadcast_to(c["q0"], c["shape"]), n, 0.05)
    p = _ensemble(rng, np.broadcast_to(c["p0"], c["shape"]), n, 0.05)
    row = {"case": c["name"], "n": n, "steps": c["steps"]}
    row["tpjax"] = attempt(tpjax_run(c), q, p)
    print(f"  {c['name']}: tpjax {fmt(row['tpjax'])} ms", flush=True)  # partial results survive a time limit
    unrolls = [int(u) for u in os.environ.get("ZOO_UNROLLS", ",".join(map(str, c["unrolls"]))).split(",")]
    if GRAD_ONLY:  # ZOO_GRAD_ONLY=1: the forward baselines are not run, only tpjax's forward and the gradients
        unrolls = []
    for u in (1, 10, 50):
        row[f"u{u}"] = attempt(user_scan(c, u), q, p) if u in unrolls else "not run"
        print(f"  {c['name']}: scan u{u} {fmt(row[f'u{u}'])} ms", flush=True)
    row["pallas"] = pallas_best(c, q, p) if GPU and not c["flat"] and not GRAD_ONLY else "-"
    row["diffrax"] = "-"
    if not c["flat"] and not GRAD_ONLY:
        try:
            row["diffrax"] = attempt(diffrax_run(c), q, p)
        except ImportError:
            pass
    try:
        flops = fused_flops(c)
    except Exception:  # no TP-IR program for this H (yet): no roofline figure
        flops = None
    row["peak"] = f"{flops / (row['tpjax'] * 1e-3) / PEAK_FP32 * 100:.0f}%" if flops and GPU else "-"
    if c["grad"]:
        row["g_user"] = attempt(grad_of(user_scan(c, 10)), q, p)
        row["g_tpjax"] = attempt(grad_of(tpjax_run(c)), q, p)
        row["g_xla"] = attempt(grad_of(tpjax_run(c, backend="xla")), q, p)
        row["g_rev"] = attempt(grad_of(tpjax_run(c, adjoint="reversible")), q, p)
        print(f"  {c['name']}: grad user u10 {fmt(row['g_user'])}, tpjax {fmt(row['g_tpjax'])}, xla "
              f"{fmt(row['g_xla'])}, reversible {fmt(row['g_rev'])} ms", flush=True)  # fmt: skip
    return row


def _per_fwd(r):
    g, f = r.get("g_tpjax"), r["tpjax"]
    return f"{g / f:.1f}x" if isinstance(g, float) and isinstance(f, float) else "-"


def fmt(x):
    return f"{x:.2f}" if isinstance(x, float) else str(x)


def table(rows):
    head = (
        "| case | N x steps | scan u1 | u10 | u50 | pallas | diffrax | tpjax | tpjax / best | %peak "
        "| grad user u10 | grad tpjax | grad tpjax / fwd | grad backend=xla | grad reversible |"
    )
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        users = [r[k] for k in ("u1", "u10", "u50", "pallas") if isinstance(r[k], float)]
        best = min(users) if users else None
        ratio = f"**{best / r['tpjax']:.2f}x**" if best and isinstance(r["tpjax"], float) else "-"
        lines.append(f"| {r['case']} | {r['n']} x {r['steps']} | " + " | ".join(fmt(r[k]) for k in
                     ("u1", "u10", "u50", "pallas", "diffrax", "tpjax")) + f" | {ratio} | {r['peak']} | "
                     f"{fmt(r.get('g_user', '-'))} | {fmt(r.get('g_tpjax', '-'))} | {_per_fwd(r)} | "
                     f"{fmt(r.get('g_xla', '-'))} | {fmt(r.get('g_rev', '-'))} |")  # fmt: skip
    return "\n".join(lines)


def main():
    scale = float(os.environ.get("ZOO_SCALE", "1"))
    want = os.environ.get("ZOO_CASES")
    cases = [c for c in CASES if not want or c["name"] in want.split(",")]
    dev = jax.devices()[0]
    head = (f"# bench_zoo, {datetime.date.today()}, {dev.device_kind} ({jax.default_backend()}), "
            f"jax {jax.__version__}, scale {scale}, float32, times in ms (median of {REPS})\n")  # fmt: skip
    print(head, flush=True)
    rows = []
    for c in cases:
        rows.append(bench(c, scale))
        print(rows[-1], flush=True)
    out = head + "\n" + table(rows) + "\n"
    report("bench_zoo.md", out.rstrip("\n"))


if __name__ == "__main__":
    main()
