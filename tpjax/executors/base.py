"""AbstractExecutor: what runs a compiled program for ``steps`` steps (an XLA loop or a fused kernel)."""

from __future__ import annotations

import abc


class AbstractExecutor(abc.ABC):
    """Runs ``comp`` from the state parts; ``integrate`` and ``trajectory`` both go through ``run``.

    ``run`` returns ``(final_parts, saved)``: the state parts after ``steps`` steps and, with
    ``save_every``, a tuple with one array per part of shape ``(steps // save_every, *part.shape)``
    (row k is the state after ``(k + 1) * save_every`` steps; the initial state is not included), else None.
    """

    name: str

    @abc.abstractmethod
    def run(self, comp, parts: tuple, dt, *, steps: int, save_every: int | None = None, adjoint=None,
            reanchor=None) -> tuple:  # fmt: skip
        """Run ``steps`` steps of ``comp`` (see the class docstring for the result)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def preflight(parts, steps: int, save_every: int | None) -> None:
    """Refuse a run whose state and saved states cannot fit on the default device (EnsembleTooLarge)."""
    from .._memory import check_fits

    check_fits(tuple(parts), steps, save_every)
