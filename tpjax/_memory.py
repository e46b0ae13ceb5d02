"""Pre-flight memory check: refuse an ensemble that cannot fit on its device with a clear error.

Without it, a too-large ensemble fails deep inside XLA with an opaque allocation error. ``check_fits`` counts a
lower bound of the bytes a run holds at once and compares it with what the device offers, so it never refuses
a run that could fit; it catches the clear cases (an ensemble, or its saved trajectory, bigger than memory).
"""

from __future__ import annotations

import math
import os

import numpy as np


class EnsembleTooLarge(MemoryError):
    """The ensemble (with its saved states) needs more memory than the device has.

    Attributes: ``shapes`` (of the state arrays), ``needed`` and ``available`` (bytes), ``device``.
    """

    def __init__(self, message: str, *, shapes, needed: int, available: int, device):
        super().__init__(message)
        self.shapes, self.needed, self.available, self.device = shapes, needed, available, device


def available_bytes(device) -> int | None:
    """Bytes ``device`` can hold: its allocator's ``bytes_limit`` (GPU ``memory_stats()``), else, for a CPU
    device, the machine's physical memory; None when neither is known (then nothing is checked)."""
    try:
        stats = device.memory_stats()
    except Exception:  # backends without allocator statistics raise rather than return None
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if getattr(device, "platform", None) == "cpu":
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _leaves(tree) -> list:
    import jax

    leaves = jax.tree.leaves(tree)
    for x in leaves:
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(
                f"check_fits: every leaf must be an array or an aval with .shape and .dtype "
                f"(e.g. jax.ShapeDtypeStruct), got {type(x).__name__}"
            )
    return leaves


def _nbytes(leaves) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in leaves)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def bytes_needed(arrays_or_avals, steps: int, save_every: int | None, carried=()) -> int:
    """The lower bound ``check_fits`` compares with the device: with S the bytes of the state arrays,

        S (the initial state, kept: inputs are not donated) + S (the final state)
        + (steps // save_every + 1) * S (the saved states, initial state first; 0 when save_every is None)
        + the bytes of ``carried`` (loop-carried registers: FSAL force, Kahan compensations).

    It leaves out H's temporaries and XLA's scratch, which depend on H and on fusion."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"check_fits: steps must be an int >= 0, got {steps!r}")
    if save_every is not None and (
        isinstance(save_every, bool) or not isinstance(save_every, int | np.integer) or save_every < 1
    ):
        raise ValueError(f"check_fits: save_every must be None or a positive int, got {save_every!r}")
    state = _nbytes(_leaves(arrays_or_avals))
    saved = 0 if save_every is None else (int(steps) // int(save_every) + 1) * state
    return 2 * state + saved + _nbytes(_leaves(carried))


def check_fits(arrays_or_avals, steps: int, save_every: int | None, device=None, *, carried=()) -> int:
    """Raise :class:`EnsembleTooLarge` if a run of ``steps`` steps of this ensemble cannot fit on ``device``.

    Args:
      arrays_or_avals: the state, a pytree of arrays or avals (``jax.ShapeDtypeStruct``) with the ensemble's
        leading dims, e.g. ``(q, p)``; nothing is allocated or transferred. For an ensemble sharded across
        devices, pass one device's shard (its avals) and that device.
      steps: number of steps (int >= 0).
      save_every: None (``integrate``: only the final state), or the saving interval (``trajectory``).
      device: a ``jax.Device`` (default: ``jax.devices()[0]``).
      carried: pytree of arrays/avals for loop-carried registers (FSAL force, Kahan compensations).
    Returns: the bytes counted (see :func:`bytes_needed`). Does nothing more when the device's capacity is
    unknown (see :func:`available_bytes`).
    Raises: EnsembleTooLarge (a MemoryError) naming the ensemble's shapes, the bytes needed and available,
    and the fixes.
    """
    if device is None:
        import jax

        device = jax.devices()[0]
    needed = bytes_needed(arrays_or_avals, steps, save_every, carried)
    available = available_bytes(device)
    if available is None or needed <= available:
        return needed
    leaves = _leaves(arrays_or_avals)
    shapes = [tuple(x.shape) for x in leaves]
    desc = ", ".join(f"{np.dtype(x.dtype).name}{list(x.shape)}" for x in leaves)
    lead = shapes[0][0] if shapes and shapes[0] else None
    fit = f" (about {lead * available // needed:,} systems of {lead:,} would fit)" if lead else ""
    saves = "" if save_every is None else f", saving every {save_every} steps ({steps // save_every + 1} saved states)"
    raise EnsembleTooLarge(
        f"ensemble too large for {device}: state {desc}, {steps} steps{saves} needs at least {_gib(needed)} "
        f"({needed:,} bytes: initial + final state{', saved states' if saves else ''}"
        f"{', carried registers' if _leaves(carried) else ''}), but the device has {_gib(available)} "
        f"({available:,} bytes). Use a smaller ensemble{fit}, shard it across devices (a sharded ensemble "
        f"splits the bytes per device), or save less (a larger save_every, or integrate instead of trajectory).",
        shapes=shapes,
        needed=needed,
        available=available,
        device=device,
    )
