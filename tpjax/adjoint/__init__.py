"""Adjoint methods for long time-stepping loops: `solve(step, z0, dt, params, steps=..., adjoint=...)`."""

from .solve import ADJOINTS as ADJOINTS
from .solve import solve as solve
