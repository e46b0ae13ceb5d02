"""Executors: what runs a compiled program -- the XLA loop, the generated fused kernel, the rigid-body
kernel -- and the one choice between them (``choose``)."""

from . import fused_loop_kernel as _fused_loop_kernel  # noqa: F401  (registers the fused-loop kernel for CUDA)
from .base import AbstractExecutor
from .choice import BACKENDS, choose, kernel_for
from .kernel import FusedKernel, RigidBodyKernel
from .xla import XlaLoop, for_xla

__all__ = ["BACKENDS", "AbstractExecutor", "FusedKernel", "RigidBodyKernel", "XlaLoop", "choose", "for_xla",
           "kernel_for"]  # fmt: skip
