"""Integrators: methods are data (stage tables); ``METHODS`` maps names to them."""

from .base import AbstractIntegrator, Drift, Kick, Splitting
from .splitting import LEAPFROG, POSITION_VERLET, SYMPLECTIC_EULER, YOSHIDA4

METHODS: dict[str, AbstractIntegrator] = {
    "symplectic_euler": SYMPLECTIC_EULER,
    "leapfrog": LEAPFROG,
    "velocity_verlet": LEAPFROG,
    "position_verlet": POSITION_VERLET,
    "yoshida4": YOSHIDA4,
}

__all__ = ["METHODS", "AbstractIntegrator", "Drift", "Kick", "Splitting"]
