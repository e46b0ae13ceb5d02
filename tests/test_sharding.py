"""Ensembles sharded across devices: jit with Explicit and Auto mesh axes, and inside shard_map.

The runs need 4 devices, which on a CPU means ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set
before jax starts; so they run in a fresh interpreter (``tests/sharding_cases.py`` prints one JSON row per
case and way of sharding) and each test here asserts on those rows. This works under pytest-xdist too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tpjax import _compat

ROOT = Path(__file__).resolve().parents[1]
MODES = ("explicit/jit", "explicit/shard_map", "auto/jit", "auto/shard_map")
ELEMENTWISE = (
    "integrate",
    "trajectory",
    "grad_state",
    "per_member_dt_and_k",
    "k_sweep_one_state",
    "kepler_grad_checkpointed",
    "fused_trajectory",
    "fused_grad",
    "fused_rigid_body",
    "fused_k_sweep_one_state",
)  # fused_*: the kernel primitives (XLA reference on CPU)
REDUCING = ("loss_grad_replicated_k", "mean_energy_error")


def forced_device_env(n_devices: int) -> dict:
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # fmt: skip


def run_on_forced_devices(module: str, *args: str, n_devices: int = 4, timeout: int = 300) -> str:
    """stdout of ``python -m <module> <args>`` on ``n_devices`` forced CPU devices (asserts it exits 0)."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=forced_device_env(n_devices),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{module} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


def _started_rows(where: Path, timeout: float = 600) -> str:
    """The output of the run conftest.py started in the background (it writes ``rc`` last)."""
    deadline = time.monotonic() + timeout
    while not (where / "rc").exists():
        assert time.monotonic() < deadline, "the background sharding run did not finish in time"
        time.sleep(0.5)
    rc = (where / "rc").read_text().strip()
    assert rc == "0", f"tests.sharding_cases failed (exit {rc}):\n{(where / 'stderr').read_text()[-4000:]}"
    return (where / "stdout").read_text()


@pytest.fixture(scope="session")
def rows() -> dict:
    """The table of every case and mode: from the run tests/conftest.py started when the session was
    configured (``TPJAX_SHARDING_ROWS``), else from a run here."""
    where = os.environ.get("TPJAX_SHARDING_ROWS")
    out = _started_rows(Path(where)) if where else run_on_forced_devices("tests.sharding_cases", *ELEMENTWISE,
                                                                         *REDUCING)  # fmt: skip
    table = {}
    for line in out.splitlines():
        r = json.loads(line)
        table[r["case"], r["mode"]] = r
    return table


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ELEMENTWISE)
def test_sharded_run_equals_the_unsharded_one_bit_for_bit(rows, case, mode):
    r = rows[case, mode]
    assert r["error"] is None, r["error"]
    assert r["equal"], f"{case} {mode}: sharded differs from unsharded by {r['rel_diff']:.3g} (relative)"
    # the result stays sharded along the ensemble axis: no gather onto one device
    assert r["spec"].startswith("('ens',"), f"{case} {mode}: output spec {r['spec']}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", REDUCING)
def test_reductions_over_a_sharded_ensemble(rows, case, mode):
    """A loss (and its gradient in a replicated parameter) or a mean energy error over the ensemble: the
    result is replicated; it equals the unsharded one up to the order of the cross-device sum."""
    r = rows[case, mode]
    assert r["error"] is None, r["error"]
    assert r["spec"] == "()", f"{case} {mode}: a reduction should be replicated, got spec {r['spec']}"
    assert r["rel_diff"] <= 1e-6, f"{case} {mode}: relative difference {r['rel_diff']:.3g}"


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="needs jax-triton (and the CUDA plugin) to cross-lower")
def test_fused_kernels_run_per_shard_in_the_cuda_lowering():
    """A vmapped ensemble of 64 split over 4 devices: the CUDA lowering calls the Triton kernel on one
    device's 16 members (inside shard_map), never on all 64, with Explicit and Auto axes."""
    rows = [json.loads(line) for line in run_on_forced_devices("tests.sharding_cuda").splitlines()]
    assert {(r["case"], r["mode"]) for r in rows} == {
        (c, m) for c in ("pendulum", "rigid_body") for m in ("explicit", "auto")
    }
    for r in rows:
        assert r["kernel"], f"{r['case']} {r['mode']}: no triton_kernel_call in the CUDA lowering"
        assert r["in_shard_map"], f"{r['case']} {r['mode']}: the fused primitive is not bound per shard"
        assert 16 in r["sizes"] and 64 not in r["sizes"], f"{r['case']} {r['mode']}: kernel operand sizes {r['sizes']}"
        assert not r["all_gather"], f"{r['case']} {r['mode']}: the lowering gathers"


@pytest.mark.gpu
def test_fused_kernel_on_several_gpus_equals_one_gpu():
    """On a multi-GPU host: the fused kernel on an ensemble split over every GPU equals one GPU's run."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import tpjax

    n = len(jax.devices("gpu"))
    if n < 2:
        pytest.skip(f"needs 2 or more GPUs, found {n}")
    H = lambda q, p: 0.5 * jnp.sum(p**2) - jnp.sum(jnp.cos(q))
    f = jax.jit(jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=200)))
    q, p = jnp.linspace(0.1, 1.5, 1024 * n, dtype=jnp.float32), jnp.zeros(1024 * n, jnp.float32)
    ref = f(q, p)
    mesh = jax.make_mesh((n,), ("ens",))
    xs = jax.device_put((q, p), NamedSharding(mesh, P("ens")))
    with jax.set_mesh(mesh):
        out = f(*xs)
        assert "triton_kernel_call" in f.lower(*xs).as_text()
    assert out[0].sharding.spec == P("ens")
    for a, b in zip(out, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
