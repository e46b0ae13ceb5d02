"""Shared pytest configuration.

``gpu``-marked tests run only where jax sees a CUDA device (``tpjax._compat.cuda_available``); elsewhere
they are skipped at collection time with the reason shown by ``-ra``.
"""

import pytest


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
