"""Generated and hand-written Triton kernels run on the CPU under Triton's interpreter, against XLA.

Each group runs once, in a subprocess (``python -m tests._interpret <group>``): ``TRITON_INTERPRET=1``
must be set before triton is imported, and this process may already have imported it. ``generated``: the
fused multi-step kernel and its saving variant for every Hamiltonian of ``tests/hamiltonians.py``
(leapfrog, float64 and float32) and every explicit canonical method (pendulum, float64), against
``tpjax.trajectory(..., backend="xla")`` under vmap. ``rigid_body``: ``kernels/rigid_body.py`` at orders 2
and 4 (the POLY and libdevice sin/cos branches, more than one CHUNK of steps) against
``rigid_body_strang`` / ``rigid_body_order4``. Tolerances: 1e-12 (float64), 1e-5 (float32).
"""

import json
import os
import subprocess
import sys

import pytest

from tests import _interpret

pytest.importorskip("triton")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RESULTS: dict = {}  # group -> {case: [error, tolerance]}, one subprocess per group


def results(group: str) -> dict:
    if group not in _RESULTS:
        env = dict(os.environ, TRITON_INTERPRET="1", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, "-m", "tests._interpret", group], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert out.returncode == 0, f"interpreter run of {group!r} failed:\n{out.stderr[-4000:]}"
        _RESULTS[group] = json.loads(out.stdout.strip().splitlines()[-1])
    return _RESULTS[group]


def check(group: str, what: str) -> None:
    """Every case of ``group`` ran and is within its tolerance (one test per group: under pytest-xdist a
    parametrized test would start the interpreter subprocess once per worker)."""
    got = results(group)
    assert sorted(got) == sorted(_interpret.cases(group)), "cases missing from the interpreter run"
    bad = {case: f"{err:.3e} > {tol:g}" for case, (err, tol) in got.items() if not err <= tol}
    assert not bad, f"interpreted kernel vs {what}, max |error| above tolerance: {bad}"


def test_generated_kernels_equal_xla():
    check("generated", "tpjax.trajectory(backend='xla')")


def test_rigid_body_kernel_equals_reference():
    check("rigid_body", "rigid_body_strang / rigid_body_order4 (relative to |L|)")


def test_kernels_of_matrices_masks_index_arrays_and_dense_layers_equal_xla():
    """Kernels beyond small-vector states: a Lennard-Jones distance matrix with a cutoff mask (comparisons and
    select), gravity through numpy index arrays (gather / scatter-add probed), a tanh MLP whose weights are
    array parameters (dot_general probed bilinear), a relu well (max) and an FPU chain of d = 24."""
    check("shapes", "tpjax.trajectory(backend='xla')")


def test_gradient_loop_kernels_equal_their_reference():
    """The fused-loop kernels of the gradient (anchored forward step, also saving its anchors, reversible
    backward sweep with shared and per-lane parameters and dt, with and without the FSAL force) against
    primitives.fused_loop's reference."""
    check("loops", "primitives.fused_loop reference (XLA)")


@pytest.mark.slow  # ~52 s of interpreter on 2 cores: run by `make test-slow` in CI, beside the default suite
def test_tile_form_kernels_equal_xla():
    """The tile form (per-system arrays as Triton tensors: gathers for shifts, tl.sum over axes, masks, the
    constant table) for every Hamiltonian it writes, FPU d = 128 and 32 Lennard-Jones atoms included."""
    check("tile", "tpjax.trajectory(backend='xla')")


def test_float64_kernels_keep_constants_float32_cannot_hold():
    """A float64 threshold of 0.1 in a where, a maximum and a clip: systems between 0.1 and float32(0.1) take
    XLA's branch (Triton 3.6 rounds a Python float in a float64 comparison or min / max to float32)."""
    check("literals", "tpjax.integrate(backend='xla')")
