"""The outer architecture: layered imports, nouns that own their behaviour, and the bugs of the old seams.

The import test reads every ``import`` (module level and inside functions) of the package with ``ast``, so
it needs nothing but the source tree.
"""

import ast
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _compat

ROOT = pathlib.Path(tpjax.__file__).parent

#: bottom to top; a unit (a sub-package, or a top-level module) may import only units of lower layers.
LAYERS = (
    ("_compat", "_memory", "ir"),
    ("primitives",),
    ("adjoint", "precision", "solution", "saveat", "events", "progress"),
    ("passes",),
    ("codegen",),
    ("frontend",),
    ("structures",),
    ("integrators",),
    ("compiler", "_validate"),
    ("executors", "time_dependent"),
    ("driver",),  # trajectory/integrate runs: save plans, observables, progress, events, resuming
    ("tangent",),
    ("cache",),
    ("api",),
    ("tpjax",),  # the package's face, tpjax/__init__.py
    ("demo",),  # python -m tpjax.demo: a user of the face
)
LAYER = {u: n for n, units in enumerate(LAYERS) for u in units}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tpjax"


def import_edges() -> set[tuple[str, str, str]]:
    """(importing file, importing unit, imported unit) for every tpjax import between units."""
    edges = set()
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        mod = ".".join(rel.parts)
        if mod.endswith(".__init__"):
            mod = pkg = mod[: -len(".__init__")]
        else:
            pkg = mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                head = ".".join(base + ([node.module] if node.module else []))
                targets = [head] if node.module else [f"{head}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t.startswith("tpjax.") or t == "tpjax":
                    a, b = _unit(mod), _unit(t)
                    if a != b:
                        edges.add((str(rel), a, b))
    return edges


def test_every_unit_has_a_layer():
    units = {a for _, a, _ in import_edges()} | {b for _, _, b in import_edges()}
    assert units <= set(LAYER), f"units without a layer: {sorted(units - set(LAYER))}"


def test_imports_only_run_down_the_layers():
    up = sorted((f, a, b) for f, a, b in import_edges() if LAYER[b] >= LAYER[a])
    assert not up, "imports that run up or sideways:\n" + "\n".join(f"{f}: {a} -> {b}" for f, a, b in up)


def test_op_primitives_import_nothing_above_ir():
    got = {b for _, a, b in import_edges() if a == "primitives"}
    assert got <= {"ir", "_compat"}, got


def test_no_structure_name_dispatch_outside_structures():
    pattern = re.compile(r"structure\s*[!=]=\s*['\"]|['\"](so3|se3|poisson)['\"]\s*[!=]=")
    hits = [f"{f.relative_to(ROOT)}:{n}" for f in ROOT.rglob("*.py") if "structures" not in f.parts
            for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]  # fmt: skip
    assert not hits, hits


# ---- bug 1: a J(z) that closes over a constant array ---------------------------------------------------
def test_poisson_structure_with_a_constant_matrix_is_the_harmonic_oscillator():
    J0 = jnp.array([[0.0, 1.0], [-1.0, 0.0]])
    H = lambda z: 0.5 * jnp.sum(z**2)
    z0 = jnp.array([1.0, 0.0])
    z1 = tpjax.integrate(H, z0, dt=0.01, steps=100, structure=lambda z: J0)
    q1, p1 = tpjax.integrate(lambda q, p: 0.5 * (q**2 + p**2), (z0[0], z0[1]), dt=0.01, steps=100,
                             method="implicit_midpoint")  # fmt: skip
    np.testing.assert_allclose(z1, jnp.stack([q1, p1]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z1, [np.cos(1.0), -np.sin(1.0)], atol=1e-4)
    sol = jax.jit(lambda z: tpjax.trajectory(H, z, dt=0.01, steps=100, save_every=10, structure=lambda z: J0))(z0)
    np.testing.assert_allclose(sol.states[-1], z1, rtol=1e-5, atol=1e-6)
    assert float(jnp.max(sol.energy_error)) < 1e-5


def test_poisson_structure_with_constants_in_both_H_and_J():
    w = jnp.array([1.0, 4.0])  # a constant of H
    S = jnp.array([[0.0, 2.0], [-2.0, 0.0]])  # a constant of J: time runs twice as fast
    H = lambda z: 0.5 * jnp.sum(w * z**2)
    z = tpjax.integrate(H, jnp.array([1.0, 0.0]), dt=0.001, steps=500, structure=lambda z: S)
    omega = 2.0 * np.sqrt(w[0] * w[1])
    np.testing.assert_allclose(z[0], np.cos(omega * 0.5), atol=1e-4)


# ---- bug 2: trajectory(structure="so3") validates backend and fast_math like integrate ------------------
RB_I = jnp.array([1.0, 2.0, 3.0])
RB_H = lambda L: 0.5 * jnp.sum(L**2 / RB_I)


@pytest.mark.parametrize("run", [tpjax.integrate, tpjax.trajectory], ids=["integrate", "trajectory"])
@pytest.mark.parametrize(("kwargs", "err"), [
    ({"backend": "bogus"}, ValueError),
    ({"backend": "triton"}, NotImplementedError),  # no GPU here
    ({"fast_math": True}, ValueError),
])  # fmt: skip
def test_so3_runs_validate_the_executor_choice(run, kwargs, err):
    with pytest.raises(err):
        run(RB_H, jnp.array([1.0, 0.1, 0.5]), dt=0.01, steps=10, structure="so3", method="rigid_body", **kwargs)


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="needs jax-triton (and the CUDA plugin) to cross-lower")
def test_so3_trajectory_runs_the_rigid_body_kernel_on_cuda(monkeypatch):
    from tpjax.executors import choice

    monkeypatch.setattr(choice, "on_cuda", lambda: True)  # what a CUDA host decides
    I = jnp.array([1.0, 2.0, 3.0], jnp.float32)
    H = lambda L: 0.5 * jnp.sum(L**2 / I)
    L = jnp.ones((64, 3), jnp.float32)
    f = jax.vmap(lambda L: tpjax.trajectory(H, L, dt=0.01, steps=20, save_every=5, structure="so3",
                                            method="rigid_body").states)  # fmt: skip
    assert "triton_kernel_call" in _compat.lower_text_for_cuda(f, L)


def test_so3_trajectory_saves_what_integrate_returns():
    L0 = jnp.array([1.0, 0.1, 0.5])
    sol = tpjax.trajectory(RB_H, L0, dt=0.01, steps=40, save_every=10, structure="so3", method="rigid_body4")
    L1 = tpjax.integrate(RB_H, L0, dt=0.01, steps=40, structure="so3", method="rigid_body4")
    np.testing.assert_allclose(sol.states[-1], L1, rtol=1e-6)  # XLA loop vs the kernel primitive's reference
    np.testing.assert_allclose(sol.casimirs, jnp.sum(sol.states**2, axis=-1), rtol=1e-6)


# ---- bug 3: the rigid-body rotations evaluate no gradient, so Precision(grad=...) is refused -----------
def test_rigid_body_refuses_a_gradient_precision_it_cannot_honour():
    with jax.enable_x64(True):
        L0 = jnp.array([1.0, 0.1, 0.5], jnp.float32)
        pol = tpjax.Precision(grad="float64", step="float32")
        with pytest.raises(ValueError, match="no effect"):
            tpjax.integrate(RB_H, L0, dt=0.01, steps=10, structure="so3", method="rigid_body", precision=pol)
        ok = tpjax.Precision(grad="float32", step="float32", compensated=True)
        out = tpjax.integrate(RB_H, L0, dt=0.01, steps=10, structure="so3", method="rigid_body", precision=ok)
        assert out.dtype == jnp.float32


# ---- carried registers are declared data ------------------------------------------------------------
def test_fsal_and_kahan_registers_are_declared_by_their_passes():
    from tpjax.passes.carry import carried

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    comp = tpjax.compile(H, (jnp.float32(1.0), jnp.float32(0.0)))
    assert [(c.ptr, c.init) for c in carried(comp.step)] == [("ptr_force", "prologue")]
    pol = tpjax.Precision(grad="float32", step="float32", compensated=True)
    comp = tpjax.compile(H, (jnp.float32(1.0), jnp.float32(0.0)), precision=pol)
    got = [(c.ptr, c.init, c.like) for c in carried(comp.step)]
    assert got == [("ptr_force", "prologue", None), ("ptr_q_comp", "zeros", "ptr_q"), ("ptr_p_comp", "zeros", "ptr_p")]


def test_fsal_does_not_depend_on_stage_labels(monkeypatch):
    from tpjax.integrators import base

    monkeypatch.setattr(base.Kick, "__str__", lambda self: f"impulse({self.c:g})")  # a renamed label
    comp = tpjax.compile(lambda q, p: 0.5 * p**2 - jnp.cos(q), (jnp.float32(1.0), jnp.float32(0.0)))
    assert comp.carries_force and "impulse(0.5)" in str(comp.source)


# ---- the executor is decided at lowering: the default call's CUDA cross-lowering shows the kernel ------
@pytest.mark.skipif(not _compat.has_jax_triton(), reason="needs jax-triton (and the CUDA plugin) to cross-lower")
def test_default_integrate_cross_lowers_to_the_fused_kernel_for_cuda():
    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    q = jnp.linspace(0.1, 1.0, 64, dtype=jnp.float32)
    f = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=50))  # no backend= argument
    assert _compat.lower_text_for_cuda(f, q, q).count("triton_kernel_call") == 1
    cpu = jax.jit(f).lower(q, q).as_text()  # the CPU lowering of the same call is the XLA loop
    assert "triton_kernel_call" not in cpu and "while" in cpu
    ref = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.01, steps=50, backend="xla"))(q, q)
    np.testing.assert_allclose(f(q, q)[0], ref[0], rtol=1e-6)  # the same ops; XLA may fuse them differently


def test_default_path_honours_the_adjoint_argument():
    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    q = jnp.linspace(0.1, 1.0, 8)

    def loss(a, adjoint):
        run = jax.vmap(lambda a, b: tpjax.integrate(H, (a, b), dt=0.05, steps=40, adjoint=adjoint)[0])
        return jnp.sum(run(a, q) ** 2)

    ref = jax.grad(loss)(q, "direct")
    for how in ("reversible", "checkpointed", None):
        np.testing.assert_allclose(jax.grad(loss)(q, how), ref, rtol=1e-5)


def test_debug_level_3_prints_the_generated_kernel_on_a_plain_compile():
    import os
    import subprocess
    import sys

    code = ("import jax.numpy as jnp, tpjax\n"
            "tpjax.compile(lambda q, p: 0.5 * p**2 - jnp.cos(q), (jnp.float32(1.0), jnp.float32(0.0)))\n")  # fmt: skip
    env = dict(os.environ, TPJAX_DEBUG="3", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[tpjax] generated code" in out.stderr and "@triton.jit" in out.stderr


def test_a_J_skew_only_at_the_start_reports_the_structure_not_just_the_solver():
    from tpjax.integrators.implicit import ConvergenceError

    z0 = jnp.array([1.0, 0.0])
    J = lambda z: jnp.array([[0.0, 1.0], [-1.0 + (z[1] - z0[1]), 0.0]])  # skew at z0 only
    with pytest.raises(ConvergenceError, match="not skew-symmetric at a state the run reached"):
        tpjax.integrate(lambda z: 0.5 * jnp.sum(z**2), z0, dt=0.1, steps=20, structure=J)
