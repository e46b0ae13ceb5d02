"""Poisson structures as objects: canonical, so(3)* (rigid body), se(3)* (heavy top), a generic J(z), and
point vortices. ``resolve(structure)`` turns the public ``structure=`` argument into one of them."""

from .base import AbstractStructure
from .canonical import Canonical
from .point_vortices import PointVortices
from .poisson import Poisson
from .se3 import SE3
from .so3 import SO3

#: the named structures accepted as strings by ``structure=``.
NAMED: dict[str, AbstractStructure] = {"canonical": Canonical(), "so3": SO3(), "se3": SE3()}


def resolve(structure) -> AbstractStructure:
    """``structure=`` as an object: a name from NAMED, an AbstractStructure, or a function J(z)."""
    if isinstance(structure, AbstractStructure):
        return structure
    if isinstance(structure, str) and structure in NAMED:
        return NAMED[structure]
    if callable(structure):
        return Poisson(structure)
    raise ValueError(f"structure={structure!r} is not known; use one of {tuple(NAMED)}, a tpjax structure object "
                     "(e.g. tpjax.PointVortices(circulations)) or a function J(z) -> (n, n) skew")  # fmt: skip


__all__ = ["NAMED", "SE3", "SO3", "AbstractStructure", "Canonical", "PointVortices", "Poisson", "resolve"]
