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


@dataclasses.dataclass(frozen=True, init=False)
class Splitting(AbstractIntegrator):
    """An explicit splitting method for separable canonical H = T(p) + V(q): a composition of exact
    kick and drift flows, hence symplectic. Requires separability (checked from the jaxpr of H).

    Two ways to build one:

    - ``Splitting(name, stages, order, symmetric)``: a stage table, e.g. ``(Kick(0.5), Drift(1.0), Kick(0.5))``.
    - ``Splitting(a=..., b=..., order=..., symmetric=..., name=...)``: drift coefficients ``a`` and kick
      coefficients ``b``, applied drift(a_1 dt), kick(b_1 dt), drift(a_2 dt), ... (drift first; set
      ``a_1 = 0`` to start with a kick). ``len(a)`` is ``len(b)`` or ``len(b) + 1``. Leapfrog is
      ``Splitting(a=(0, 1), b=(0.5, 0.5), order=2)``. See :mod:`tpjax.integrators.composition`.

    Checks: sum(a) = sum(b) = 1 (consistency); ``symmetric=True`` needs a palindromic table (then
    step(-dt) inverts step(dt)); ``symmetric`` left out is read off the table. ``order`` is the global
    order you claim; tpjax cannot verify it cheaply, so it defaults to 1 (all that consistency implies) --
    pass the order of your method (the test suite measures it for every built-in table).
    """

    name: str
    stages: tuple[Kick | Drift, ...]
    order: int
    symmetric: bool
    structures: tuple[str, ...] = ("canonical",)
    explicit: bool = True

    def __init__(self, name: str | None = None, stages=None, order: int | None = None, symmetric: bool | None = None,
                 structures: tuple[str, ...] = ("canonical",), explicit: bool = True, *, a=None, b=None):  # fmt: skip
        from . import composition

        if (a is None) != (b is None):
            raise TypeError("Splitting: give both a= (drift coefficients) and b= (kick coefficients)")
        if a is not None and stages is not None:
            raise TypeError("Splitting: give either stages or a=/b= coefficients, not both")
        if a is None and stages is None:
            raise TypeError("Splitting needs stages, e.g. (Kick(0.5), Drift(1.0), Kick(0.5)), or a=/b= coefficients")
        arg = "a/b" if a is not None else "stages"
        stages = composition.stages_from_coefficients(a, b) if a is not None else tuple(stages)
        if symmetric is None:  # a table of anything but Kick/Drift stages is refused by composition.check below
            symmetric = all(isinstance(s, Kick | Drift) for s in stages) and composition.is_palindrome(stages)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("name", "custom_splitting" if name is None else str(name))
        set_("stages", stages)
        set_("order", 1 if order is None else order)
        set_("symmetric", bool(symmetric))
        set_("structures", tuple(structures))
        set_("explicit", explicit)
        composition.check(self, arg)

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

    @property
    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(a, b) in the ``Splitting(a=, b=)`` convention: a_1 = 0 when the table starts with a kick."""
        a, b = [], []
        for s in self.stages:
            if isinstance(s, Drift):
                a.append(s.c)
            else:
                if len(a) == len(b):
                    a.append(0.0)
                b.append(s.c)
        return tuple(a), tuple(b)

    @property
    def force_evaluations(self) -> int:
        """Evaluations of dH/dq per step once FSAL merges the closing kick with the next opening one."""
        return sum(isinstance(s, Kick) for s in self.stages) - (1 if self.fsal else 0)
