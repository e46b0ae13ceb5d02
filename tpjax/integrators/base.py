"""Integrator base classes. Final integrators are mostly data: a name, an order and a stage table."""

from __future__ import annotations

import abc
import dataclasses


class AbstractIntegrator(abc.ABC):
    """A one-step method. ``order``: global order; ``symmetric``: step(-dt) o step(dt) = id."""

    name: str
    order: int
    symmetric: bool
    structures: tuple[str, ...]

    @property
    def reversible(self) -> bool:
        return self.symmetric


@dataclasses.dataclass(frozen=True)
class Kick:
    """p <- p - c dt dH/dq  (exact flow of the q-part of a separable H)."""

    c: float

    def __str__(self) -> str:
        return f"kick({self.c:g})"


@dataclasses.dataclass(frozen=True)
class Drift:
    """q <- q + c dt dH/dp  (exact flow of the p-part of a separable H)."""

    c: float

    def __str__(self) -> str:
        return f"drift({self.c:g})"


@dataclasses.dataclass(frozen=True)
class Splitting(AbstractIntegrator):
    """An explicit splitting method for separable canonical H = T(p) + V(q): a composition of exact
    kick and drift flows, hence symplectic. Requires separability (checked from the jaxpr of H)."""

    name: str
    stages: tuple[Kick | Drift, ...]
    order: int
    symmetric: bool
    structures: tuple[str, ...] = ("canonical",)
    explicit: bool = True

    def __post_init__(self):
        for cls in (Kick, Drift):
            total = sum(s.c for s in self.stages if isinstance(s, cls))
            if abs(total - 1.0) > 1e-12:
                raise ValueError(f"{self.name}: {cls.__name__} coefficients sum to {total}, not 1")

    @property
    def fsal(self) -> bool:
        """First same as last: the closing kick's force is the next step's opening force."""
        s = self.stages
        return len(s) > 1 and isinstance(s[0], Kick) and isinstance(s[-1], Kick)
