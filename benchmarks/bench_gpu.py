"""GPU benchmark: pendulum / harmonic ensembles, N = 4,194,304 systems x 1000 leapfrog steps, float32;
case (c): free rigid body (so3), N = 1,048,576 bodies x 1000 steps, I = (1, 2, 3), float32.

Variants: hand-written lax.scan leapfrog with jax.grad (unroll 1, best of 10/50), tpjax.integrate (XLA
path), the fused tpjax Triton kernel (precise, fast_math), diffrax SemiImplicitEuler when importable.
Median of >= 5 timed runs after warm-up. Flops per step are counted from the TP-IR step program as the
kernel executes it: FMA = 2, ELEM = 1 (sin/cos count as ~1 SFU op, an approximation).

Case (c) variants: hand-written jnp Strang splitting (exact axis rotations) in lax.scan (unroll 1, best of
10/50), hand-written RK4 on L' = L x (L / I), tpjax.integrate(structure="so3", method="rigid_body") under
vmap (XLA path), and the hand-written fused kernel kernels/rigid_body.py (precise, fast_math). Flops for (c):
5 rotations per Strang step x 14 (sin, cos = 1 each), the reference count (the kernel merges R1 ends: 4).

Run: PYTHONPATH=. python benchmarks/bench_gpu.py   (writes $OUT/bench_gpu.md when OUT is set)
     BENCH_CASES=c selects cases (a = pendulum, b = harmonic, c = rigid body; default all)
"""

import datetime
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tpjax  # noqa: E402
from benchmarks._timing import median_ms, report  # noqa: E402
from tpjax.codegen import triton as TG  # noqa: E402

N, STEPS, DT, REPS = 4_194_304, 1000, 0.01, 7
PEAK_FP32 = 67e12  # H100 SXM FP32 non-tensor


def pendulum(q, p):
    return p**2 / 2 - jnp.cos(q)


def harmonic(q, p):
    return 0.5 * p**2 + 0.5 * q**2


def timeit(fn, *args):
    return median_ms(fn, *args, reps=REPS)


def scan_leapfrog(H, unroll):
    dHdq = jax.grad(lambda q, p: jnp.sum(H(q, p)), 0)
    dHdp = jax.grad(lambda q, p: jnp.sum(H(q, p)), 1)

    @jax.jit
    def run(q, p):
        def step(c, _):
            q, p = c
            p = p - 0.5 * DT * dHdq(q, p)
            q = q + DT * dHdp(q, p)
            p = p - 0.5 * DT * dHdq(q, p)
            return (q, p), None

        return jax.lax.scan(step, (q, p), None, length=STEPS, unroll=unroll)[0]

    return run


def diffrax_fn(H):
    import diffrax

    dHdq = jax.grad(lambda q, p: jnp.sum(H(q, p)), 0)
    dHdp = jax.grad(lambda q, p: jnp.sum(H(q, p)), 1)
    terms = (diffrax.ODETerm(lambda t, p, a: dHdp(jnp.zeros_like(p), p)),
             diffrax.ODETerm(lambda t, q, a: -dHdq(q, jnp.zeros_like(q))))  # fmt: skip

    @jax.jit
    def run(q, p):
        sol = diffrax.diffeqsolve(
            terms,
            diffrax.SemiImplicitEuler(),
            0.0,
            STEPS * DT,
            DT,
            (q, p),
            max_steps=STEPS,
            saveat=diffrax.SaveAt(t1=True),
        )
        return sol.ys[0][-1], sol.ys[1][-1]

    return run


def _xla_no_fsal(H):
    """The XLA path with the force recomputed each step instead of carried (pipeline without fsal)."""
    from tpjax import adjoint
    from tpjax.compiler import compile_hamiltonian
    from tpjax.integrators import METHODS
    from tpjax.passes import dce

    z = jnp.zeros((), jnp.float32)
    comp = compile_hamiltonian(H, (z, z), METHODS["leapfrog"], "canonical", pipeline=(("dce", dce),))
    st = comp.method.stepper(comp)

    def one(a, b):
        return adjoint.solve(st.step, st.initial((), (a, b)), jnp.float32(DT), st.params, steps=STEPS)[:2]

    return jax.jit(jax.vmap(one))


def bench(name, H):
    z = jnp.zeros((), jnp.float32)
    comp = tpjax.compile(H, (z, z), method="leapfrog")
    key = jax.random.PRNGKey(0)
    q = jax.random.uniform(key, (N,), jnp.float32, -2.0, 2.0)
    p = jnp.zeros((N,), jnp.float32)
    rows = {}
    rows["lax.scan + jax.grad, unroll=1"] = timeit(scan_leapfrog(H, 1), q, p)
    best = min((timeit(scan_leapfrog(H, u), q, p), u) for u in (10, 50))
    rows[f"lax.scan + jax.grad, best unroll ({best[1]})"] = best[0]
    xla = jax.jit(lambda q, p: jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=DT, steps=STEPS,
                                                                     backend="xla"))(q, p))  # fmt: skip
    rows["tpjax.integrate, backend='xla'"] = timeit(xla, q, p)
    rows["tpjax.integrate, backend='xla', no FSAL carry"] = timeit(_xla_no_fsal(H), q, p)
    auto = jax.jit(lambda q, p: jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=DT, steps=STEPS))(q, p))
    rows["tpjax.integrate, backend='auto' (vmap)"] = timeit(auto, q, p)
    fused = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, DT, STEPS))
    fast = jax.jit(lambda q, p: TG.fused_integrate(comp, q, p, DT, STEPS, fast_math=True))
    rows["tpjax fused Triton kernel"] = timeit(fused, q, p)
    rows["tpjax fused Triton kernel, fast_math"] = timeit(fast, q, p)
    try:
        rows["diffrax SemiImplicitEuler"] = timeit(diffrax_fn(H), q, p)
    except Exception as e:  # not installed, or an API difference
        print(f"[{name}] diffrax skipped: {type(e).__name__}: {e}")
    # correctness: fused vs XLA
    a, b = fused(q, p), xla(q, p)
    diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(a, b, strict=True))
    fa = fast(q, p)
    diff_fast = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(fa, b, strict=True))
    print(f"[{name}] max |fused - XLA| = {diff:.3e}; max |fast_math - XLA| = {diff_fast:.3e}")
    flops = TG.flops_per_step(comp.step)["flops"] * N * STEPS
    return rows, flops, diff, diff_fast


RB_N, RB_INERTIA = 1_048_576, (1.0, 2.0, 3.0)
RB_FLOPS_PER_STEP = 5 * 14


def rb_energy(L):
    return jnp.sum(L * L / (2.0 * jnp.asarray(RB_INERTIA, L.dtype)), axis=-1)


def scan_rb_strang(unroll):
    """Hand-written Strang splitting R1(h) R2(h) R3(dt) R2(h) R1(h) with plain cos/sin rotations."""
    inertia = jnp.asarray(RB_INERTIA, jnp.float32)

    def rot(L, i, tau):
        j, k = (i + 1) % 3, (i + 2) % 3
        a = -tau * L[:, i] / inertia[i]
        c, s = jnp.cos(a), jnp.sin(a)
        out = [None] * 3
        out[i], out[j], out[k] = L[:, i], c * L[:, j] - s * L[:, k], s * L[:, j] + c * L[:, k]
        return jnp.stack(out, axis=-1)

    @jax.jit
    def run(L):
        def step(L, _):
            h = 0.5 * DT
            return rot(rot(rot(rot(rot(L, 0, h), 1, h), 2, DT), 1, h), 0, h), None

        return jax.lax.scan(step, L, None, length=STEPS, unroll=unroll)[0]

    return run


def scan_rb_rk4(unroll=1):
    """What a naive user writes: classical RK4 on Euler's equations L' = L x (L / I)."""
    inertia = jnp.asarray(RB_INERTIA, jnp.float32)
    f = lambda L: jnp.cross(L, L / inertia)  # noqa: E731

    @jax.jit
    def run(L):
        def step(L, _):
            k1 = f(L)
            k2 = f(L + 0.5 * DT * k1)
            k3 = f(L + 0.5 * DT * k2)
            k4 = f(L + DT * k3)
            return L + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

        return jax.lax.scan(step, L, None, length=STEPS, unroll=unroll)[0]

    return run


def bench_rigid_body():
    from tpjax.executors.fused_rigid_body import fused_rigid_body

    inertia = jnp.asarray(RB_INERTIA, jnp.float32)
    L = jax.random.normal(jax.random.PRNGKey(0), (RB_N, 3), jnp.float32)
    rows = {}
    rows["lax.scan Strang (jnp), unroll=1"] = timeit(scan_rb_strang(1), L)
    best = min((timeit(scan_rb_strang(u), L), u) for u in (10, 50))
    rows[f"lax.scan Strang (jnp), best unroll ({best[1]})"] = best[0]
    rows["lax.scan RK4 on L' = L x (L/I), unroll=1"] = timeit(scan_rb_rk4(1), L)
    integ = jax.jit(jax.vmap(lambda l: tpjax.integrate(rb_energy, l, dt=DT, steps=STEPS, structure="so3",
                                                       method="rigid_body", backend="xla")))  # fmt: skip
    rows["tpjax.integrate so3 rigid_body, backend='xla' (vmap)"] = timeit(integ, L)
    auto = jax.jit(jax.vmap(lambda l: tpjax.integrate(rb_energy, l, dt=DT, steps=STEPS, structure="so3",
                                                      method="rigid_body")))  # fmt: skip
    rows["tpjax.integrate so3 rigid_body, backend='auto' (vmap)"] = timeit(auto, L)
    fused = jax.jit(lambda L: fused_rigid_body(L, inertia, DT, steps=STEPS))
    fast = jax.jit(lambda L: fused_rigid_body(L, inertia, DT, steps=STEPS, fast_math=True))
    rows["tpjax fused rigid-body kernel"] = timeit(fused, L)
    rows["tpjax fused rigid-body kernel, fast_math"] = timeit(fast, L)
    ref = integ(L)
    diff = float(jnp.max(jnp.abs(fused(L) - ref)))
    diff_fast = float(jnp.max(jnp.abs(fast(L) - ref)))
    c0 = jnp.sum(L * L, -1)
    drift = {k: float(jnp.max(jnp.abs(jnp.sum(x * x, -1) - c0) / c0))
             for k, x in (("fused", fused(L)), ("fast", fast(L)), ("rk4", scan_rb_rk4(1)(L)))}  # fmt: skip
    print(f"[rigid body] max |fused - XLA| = {diff:.3e}; fast_math: {diff_fast:.3e}; rel |L|^2 drift {drift}")
    return rows, RB_FLOPS_PER_STEP * RB_N * STEPS, diff, diff_fast, drift


def _table(title, rows, base, best, flops):
    """One case's markdown table: ms, speed-up vs unroll 1 and vs the best unroll, % of FP32 peak."""
    out = [title, "", "| variant | ms | vs unroll=1 | vs best unroll | % FP32 peak |", "|---|---:|---:|---:|---:|"]
    for k, ms in rows.items():
        frac = flops / (ms * 1e-3) / PEAK_FP32 * 100
        out.append(f"| {k} | {ms:.3f} | {base / ms:.2f}x | {best / ms:.2f}x | {frac:.1f}% |")
    return out + [""]


def main():
    import jax_triton
    import triton

    dev = jax.devices()[0].device_kind
    out = [f"# bench_gpu ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC})", "",
           f"device: {dev}; jax {jax.__version__}, triton {triton.__version__}, "
           f"jax-triton {getattr(jax_triton, '__version__', '?')}",
           f"command: `{' '.join([os.path.basename(sys.executable), *sys.argv])}`",
           f"N = {N} systems x {STEPS} leapfrog steps, float32, median of {REPS} runs. "
           "Flops: FMA = 2, ELEM = 1 (sin/cos ~1 SFU op); peak FP32 67 TFLOP/s (H100 SXM).", ""]  # fmt: skip
    cases = os.environ.get("BENCH_CASES", "abc")
    for name, H in [
        c for c, k in zip((("pendulum", pendulum), ("harmonic", harmonic)), "ab", strict=True) if k in cases
    ]:
        rows, flops, diff, diff_fast = bench(name, H)
        base = rows["lax.scan + jax.grad, unroll=1"]
        best = next(v for k, v in rows.items() if k.startswith("lax.scan + jax.grad, best"))
        out += _table(
            f"## {name}  (max |fused - XLA| = {diff:.2e}, fast_math: {diff_fast:.2e})", rows, base, best, flops
        )
    if "c" in cases:
        rows, flops, diff, diff_fast, drift = bench_rigid_body()
        base = rows["lax.scan Strang (jnp), unroll=1"]
        best = next(v for k, v in rows.items() if k.startswith("lax.scan Strang (jnp), best"))
        title = (
            f"## (c) free rigid body, N = {RB_N} x {STEPS} steps, I = {RB_INERTIA}, float32  "
            f"(max |fused - XLA| = {diff:.2e}, fast_math: {diff_fast:.2e}; max rel. |L|^2 drift: fused "
            f"{drift['fused']:.1e}, fast_math {drift['fast']:.1e}, RK4 {drift['rk4']:.1e})"
        )
        out += _table(title, rows, base, best, flops)
    text = "\n".join(out)
    report("bench_gpu.md", text)


if __name__ == "__main__":
    main()
