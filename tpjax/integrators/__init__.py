"""Integrators: methods are data (stage tables); ``METHODS`` maps names to them."""

from . import splitting as S
from .base import AbstractIntegrator, Drift, Kick, Splitting
from .composition import Composition
from .gauss import GAUSS4, GAUSS6, GAUSS8, GaussLegendre
from .lie import RIGID_BODY, RIGID_BODY4, RigidBodySplitting
from .midpoint import IMPLICIT_MIDPOINT, ImplicitMidpoint
from .splitting import LEAPFROG, POSITION_VERLET, SYMPLECTIC_EULER, YOSHIDA4
from .tao import TAO, TRIPLE_JUMP4, Tao

METHODS: dict[str, AbstractIntegrator] = {
    "symplectic_euler": SYMPLECTIC_EULER,
    "leapfrog": LEAPFROG,
    "velocity_verlet": LEAPFROG,
    "position_verlet": POSITION_VERLET,
    "yoshida4": YOSHIDA4,
    "yoshida6": S.YOSHIDA6,
    "yoshida8": S.YOSHIDA8,
    "suzuki4": S.SUZUKI4,
    "mclachlan4": S.MCLACHLAN4,
    "blanes_moan4": S.BLANES_MOAN4,
    "blanes_moan6": S.BLANES_MOAN6,
    "kahan_li6": S.KAHAN_LI6,
    "kahan_li8": S.KAHAN_LI8,
    "omelyan2": S.OMELYAN2,
    "calvo_sanz4": S.CALVO_SANZ4,
    "sofroniou_spaletta10": S.SOFRONIOU_SPALETTA10,
    "implicit_midpoint": IMPLICIT_MIDPOINT,
    "rigid_body": RIGID_BODY,
    "rigid_body4": RIGID_BODY4,
    "gauss4": GAUSS4,
    "gauss6": GAUSS6,
    "gauss8": GAUSS8,
    "tao": TAO,
}

__all__ = [
    "METHODS",
    "AbstractIntegrator",
    "Composition",
    "Drift",
    "GaussLegendre",
    "ImplicitMidpoint",
    "Kick",
    "RigidBodySplitting",
    "Splitting",
    "TRIPLE_JUMP4",
    "Tao",
]
