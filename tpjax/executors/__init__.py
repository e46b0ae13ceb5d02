"""Executors: what runs a compiled program -- the XLA loop, the generated fused kernel, the rigid-body
kernel -- and the one choice between them (``choose``)."""

from .base import AbstractExecutor
from .choice import BACKENDS, choose, kernel_for
from .kernel import FusedKernel, RigidBodyKernel
from .xla import XlaLoop, for_xla

__all__ = ["BACKENDS", "AbstractExecutor", "FusedKernel", "RigidBodyKernel", "XlaLoop", "choose", "for_xla",
           "kernel_for"]  # fmt: skip
