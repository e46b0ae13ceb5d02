"""Shared pytest configuration.

``gpu``-marked tests run only where jax sees a CUDA device (``tpjax._compat.cuda_available``); elsewhere
they are skipped at collection time with the reason shown by ``-ra``.

The sharding table (``tests/sharding_cases.py`` on 4 forced CPU devices, about 50 s) starts in the background
when a run that includes ``tests/test_sharding.py`` is configured (on the xdist controller, before the
workers start; they find it through ``TPJAX_SHARDING_ROWS``), so it runs once per session, alongside the
other tests, instead of once per worker.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    if hasattr(config, "workerinput") or os.environ.get("TPJAX_SHARDING_ROWS"):
        return
    if not any(Path(a.split("::")[0]).resolve() in (ROOT / "tests", ROOT / "tests" / "test_sharding.py")
               for a in config.args):  # fmt: skip
        return
    from tests.test_sharding import ELEMENTWISE, REDUCING, forced_device_env

    where = Path(tempfile.mkdtemp(prefix="tpjax-sharding-"))
    os.environ["TPJAX_SHARDING_ROWS"] = str(where)
    cmd = [sys.executable, "-c", _RUNNER, str(where), sys.executable, "-m", "tests.sharding_cases", *ELEMENTWISE,
           *REDUCING]  # fmt: skip
    config._tpjax_sharding = (subprocess.Popen(cmd, cwd=ROOT, env=forced_device_env(4), start_new_session=True),
                              where)  # fmt: skip


#: runs argv[2:] with stdout/stderr to files in argv[1], then writes its exit code to ``rc`` (atomically, last)
_RUNNER = (
    "import os, subprocess, sys; w = sys.argv[1]; "
    "r = subprocess.call(sys.argv[2:], stdout=open(w + '/stdout', 'w'), stderr=open(w + '/stderr', 'w')); "
    "open(w + '/rc.partial', 'w').write(str(r)); os.replace(w + '/rc.partial', w + '/rc')"
)


def pytest_unconfigure(config):
    proc, where = getattr(config, "_tpjax_sharding", (None, None))
    if proc is not None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its child (a new session of their own)
        proc.wait()
        shutil.rmtree(where, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    from tpjax._compat import cuda_available  # imported here: jax starts only if gpu tests were collected

    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU visible to jax (jax.devices('gpu') is empty)")
    for item in gpu_items:
        item.add_marker(skip)
