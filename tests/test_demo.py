"""The first run: the demo prints no traceback with JAX_PLATFORMS unset, shows a bar and writes the PNG."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_demo_runs_clean_without_jax_platforms(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    env["PYTHONPATH"] = str(ROOT)
    png = tmp_path / "demo.png"
    code = f"from tpjax.demo import main; main(n=64, steps=200, out={str(png)!r})"
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert "64 pendulums" in r.stderr and "200/200" in r.stderr  # the tqdm bar (on stderr)
    assert "STORE     ptr_force" in r.stdout and "relative energy error" in r.stdout
    assert png.stat().st_size > 10_000
