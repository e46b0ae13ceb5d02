"""Integrator base classes. Final integrators are mostly data: a name, an order and a stage table."""

from __future__ import annotations

import abc
import dataclasses


class AbstractIntegrator(abc.ABC):
    """A one-step method. It owns how it is scheduled into TP-IR and how it steps.

    Attributes: ``name``; ``order`` (global order); ``symmetric`` (step(-dt) o step(dt) = id, so the
    reversible adjoint applies); ``structures``: the names of the structures it applies to, or "flow"
    for any structure with a flow (the implicit methods).
    """

    name: str
    order: int
    symmetric: bool
    structures: tuple[str, ...]

    @property
    def reversible(self) -> bool:
        return self.symmetric

    def applies_to(self, structure) -> bool:
        """Can this method integrate ``structure`` (an AbstractStructure)?"""
        return (
            "flow" in self.structures
            or structure.name in self.structures
            or ("canonical" in self.structures and structure.canonical)
        )

    @abc.abstractmethod
    def schedule(self, b, tr, regs, const_regs) -> None:
        """Emit this method's backward, Poisson and integrate phases after the forward phase."""

    def check(self, comp) -> None:  # noqa: B027 (a hook: most methods need no check)
        """Checks of the compiled program (e.g. separability); raise a clear error when it does not fit."""

    def stepper(self, comp):
        """The one-step map for the XLA loop (a :class:`tpjax.integrators.stepper.Stepper`): by default the
        compiled step program, with the carried registers it declares."""
        from .stepper import program_stepper

        return program_stepper(comp)


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

    def schedule(self, b, tr, regs, const_regs) -> None:
        from .schedule import schedule_stages

        schedule_stages(b, tr, [(st, isinstance(st, Kick)) for st in self.stages], regs, const_regs)

    def check(self, comp) -> None:
        from .schedule import check_separable

        check_separable(comp.traced, self.name)

    @property
    def fsal(self) -> bool:
        """First same as last: the closing kick's force is the next step's opening force."""
        s = self.stages
        return len(s) > 1 and isinstance(s[0], Kick) and isinstance(s[-1], Kick)
