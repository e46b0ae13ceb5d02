"""Stand-ins for testing kernel launchers without a GPU: array-like specs and a recording ``call``."""

import numpy as np


class Spec:
    """Just the shape and dtype of an array (what a launcher reads)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, np.dtype(dtype)


def record(*args, **kw):
    """A ``call`` that returns what the launcher passed to triton_call."""
    return args, kw
