"""Integrators: methods are data (stage tables); ``METHODS`` maps names to them."""

from .base import AbstractIntegrator, Drift, Kick, Splitting
from .lie import RIGID_BODY, RIGID_BODY4, RigidBodySplitting
from .midpoint import IMPLICIT_MIDPOINT, ImplicitMidpoint
from .splitting import LEAPFROG, POSITION_VERLET, SYMPLECTIC_EULER, YOSHIDA4

METHODS: dict[str, AbstractIntegrator] = {
    "symplectic_euler": SYMPLECTIC_EULER,
    "leapfrog": LEAPFROG,
    "velocity_verlet": LEAPFROG,
    "position_verlet": POSITION_VERLET,
    "yoshida4": YOSHIDA4,
    "implicit_midpoint": IMPLICIT_MIDPOINT,
    "rigid_body": RIGID_BODY,
    "rigid_body4": RIGID_BODY4,
}

__all__ = [
    "METHODS",
    "AbstractIntegrator",
    "Drift",
    "ImplicitMidpoint",
    "Kick",
    "RigidBodySplitting",
    "Splitting",
]
