"""Work-precision diagrams of the explicit splitting library (issue 11 item 7), float64 on the CPU.

For every explicit canonical method in ``tpjax.METHODS`` and two problems -- Kepler with eccentricity 0.6
over 10 orbits (exact solution from Kepler's equation) and Henon-Heiles over t = 100 (reference: the
10th-order composition with 20,000 steps) -- it sweeps the step size and records, against the number of
force evaluations (dH/dq; FSAL counted, the prologue's one included):

- the energy error max_t |H(t) - H(0)| (states saved every step), and
- the trajectory error |z(T) - z_ref(T)| at the final time.

It writes ``docs/work_precision.png`` and prints a markdown table. implicit_midpoint is left out: its cost
per step is the iteration count of its nonlinear solve, not a fixed number of force evaluations.

    JAX_PLATFORMS=cpu python benchmarks/work_precision.py
"""

from __future__ import annotations

import math
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import tpjax  # noqa: E402

E = 0.6
BUDGETS = [1000 * 2**k for k in range(10)]  # total force evaluations per run: 1e3 ... 5.1e5
OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "work_precision.png"


def kepler(q, p):
    return 0.5 * jnp.sum(p**2) - 1.0 / jnp.sqrt(jnp.sum(q**2))


def henon_heiles(q, p):
    x, y = q[0], q[1]
    return 0.5 * jnp.sum(p**2) + 0.5 * (x**2 + y**2) + x**2 * y - y**3 / 3.0


def kepler_exact(t: float) -> np.ndarray:
    """(q, p) at time t for a = 1, mu = 1, starting at pericentre: Newton on Kepler's equation."""
    m, ecc = math.fmod(t, 2 * math.pi), math.pi
    for _ in range(50):
        ecc -= (ecc - E * math.sin(ecc) - m) / (1 - E * math.cos(ecc))
    b, dot = math.sqrt(1 - E**2), 1.0 / (1 - E * math.cos(ecc))
    return np.array([math.cos(ecc) - E, b * math.sin(ecc), -math.sin(ecc) * dot, b * math.cos(ecc) * dot])


PROBLEMS = {
    "Kepler e=0.6, 10 orbits": (kepler, (jnp.array([1 - E, 0.0]), jnp.array([0.0, math.sqrt((1 + E) / (1 - E))])),
                                20 * math.pi),
    "Henon-Heiles, t=100": (henon_heiles, (jnp.array([0.0, 0.1]), jnp.array([0.35, 0.0])), 100.0),
}  # fmt: skip


def reference(name, H, s0, t):
    if name.startswith("Kepler"):
        return kepler_exact(t)
    q, p = tpjax.integrate(H, s0, dt=t / 20000, steps=20000, method="sofroniou_spaletta10")
    q2, p2 = tpjax.integrate(H, s0, dt=t / 40000, steps=40000, method="sofroniou_spaletta10")
    assert float(jnp.max(jnp.abs(q - q2))) < 1e-12, "reference not converged"
    return np.concatenate([q2, p2])


def run(method, H, s0, t, ref):
    m = tpjax.METHODS[method]
    rows = []
    for budget in BUDGETS:
        steps = max(1, round((budget - m.fsal) / m.force_evaluations))
        sol = tpjax.trajectory(H, s0, dt=t / steps, steps=steps, method=method)
        z = np.concatenate([np.asarray(sol.states[0][-1]), np.asarray(sol.states[1][-1])])
        energy = float(jnp.max(jnp.abs(sol.energies - sol.energies[0])))
        traj = float(np.linalg.norm(z - ref))
        rows.append((steps * m.force_evaluations + m.fsal, energy if np.isfinite(energy) else np.inf,
                     traj if np.isfinite(traj) else np.inf))  # fmt: skip
    return np.array(rows)


def evals_for(rows, col, tol):
    """Force evaluations to reach error tol (log-log interpolation between sweep points), or None."""
    for (n0, *e0), (n1, *e1) in zip(rows[:-1], rows[1:], strict=True):
        a, b = e0[col], e1[col]
        if a > tol >= b and np.isfinite(a):
            return n0 * (n1 / n0) ** (math.log(a / tol) / math.log(a / b))
    return rows[0][0] if rows[0][col + 1] <= tol else None


def fmt(x):
    return "-" if x is None else f"{x:.2g}"


def main():
    methods = [k for k, v in tpjax.METHODS.items() if isinstance(v, tpjax.Splitting) and k != "velocity_verlet"]
    t0 = time.time()
    results = {}
    for pname, (H, s0, t) in PROBLEMS.items():
        ref = reference(pname, H, s0, t)
        for mname in methods:
            results[pname, mname] = run(mname, H, s0, t, ref)
    plot(methods, results)
    print(f"jax {jax.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{jax.devices()[0].platform}; {time.time() - t0:.0f} s\n")  # fmt: skip
    head = "| method | order | forces/step |"
    for pname in PROBLEMS:
        head += f" {pname}: evals for traj err 1e-6 | evals for energy err 1e-8 | traj err @ 64k | energy err @ 64k |"
    print(head)
    print("|---|---:|---:|" + "---:|---:|---:|---:|" * len(PROBLEMS))
    for mname in methods:
        m = tpjax.METHODS[mname]
        line = f"| {mname} | {m.order} | {m.force_evaluations} |"
        for pname in PROBLEMS:
            rows = results[pname, mname]
            at = rows[BUDGETS.index(64000)]
            line += f" {fmt(evals_for(rows, 1, 1e-6))} | {fmt(evals_for(rows, 0, 1e-8))} | {at[2]:.1e} | {at[1]:.1e} |"
        print(line)


def plot(methods, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 10), sharex=True)
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(methods)))
    styles = ["-o", "-s", "-^", "-v", "-D", "-P", "-X", "-*"]
    for col, pname in enumerate(PROBLEMS):
        for row, (label, k) in enumerate((("energy error max|H - H0|", 1), ("trajectory error |z(T) - z_ref|", 2))):
            ax = axes[row, col]
            for i, mname in enumerate(methods):
                r = results[pname, mname]
                ok = np.isfinite(r[:, k]) & (r[:, k] < 1.0)
                ax.loglog(r[ok, 0], np.maximum(r[ok, k], 1e-16), styles[i % len(styles)], color=colors[i], ms=3,
                          lw=1.2, label=f"{mname} ({tpjax.METHODS[mname].order})")  # fmt: skip
            ax.set_title(f"{pname}: {label}")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_ylabel(label)
            if row == 1:
                ax.set_xlabel("force evaluations (dH/dq)")
    axes[0, 1].legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle("tpjax splitting library: work-precision, float64, CPU")
    fig.tight_layout()
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
