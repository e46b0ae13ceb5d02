"""The Solution pytree returned by ``tpjax.trajectory``: saved states or observables, energies, Casimirs,
the final state and carried registers (to continue the run), event results, run statistics and plots."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Stats(NamedTuple):
    """Run statistics: ``steps`` taken (static), ``max_energy_error`` (max relative |H - H0| over the saved
    times), ``drift_rate`` (least-squares slope of the relative energy error vs time, per unit time) and
    ``backend`` (the executor that ran: "xla", "fused_kernel", "rigid_body_kernel")."""

    steps: int
    max_energy_error: Any
    drift_rate: Any
    backend: str


@dataclasses.dataclass(frozen=True)
class Solution:
    """A trajectory (a pytree: works as a jit/vmap output; ``backend``, ``method`` and ``steps`` are static).

    ``ts[k]`` is the time of saved entry k; ``states`` the saved states (None when ``SaveAt(fn=...)``
    saved ``observables`` instead); ``energies`` is H at each saved time; ``casimirs`` the structure's
    Casimirs there (so3: |L|^2; se3: (Gamma.Gamma, L.Gamma); point vortices: (impulse_x, impulse_y,
    angular impulse); canonical: None). Time is the last axis of ``energies`` and of each Casimir, the
    leading axis (after any vmap axis) of each saved state or observable leaf.

    ``final`` is the state at the end (at the event for a terminal event), ``t_final`` its time and
    ``carry`` the executor's carried registers there (the FSAL force; None from a fused kernel), so
    ``tpjax.trajectory(H, sol, ...)`` continues bit for bit. ``event_happened`` / ``event_time`` (NaN
    where no event happened) are set when the run had an ``event``, else None. With
    ``trajectory(..., tangent=True)``: ``lyapunov`` (the running largest-Lyapunov-exponent estimate) and
    ``megno`` (the running MEGNO <Y>) at each saved time (0 at the initial time); else None.
    """

    ts: Any
    states: Any
    energies: Any
    casimirs: Any = None
    observables: Any = None
    final: Any = None
    t_final: Any = None
    carry: Any = None
    event_happened: Any = None
    event_time: Any = None
    backend: str = "xla"
    method: str = ""
    steps: int = 0
    lyapunov: Any = None
    megno: Any = None

    @property
    def casimir_error(self):
        """Relative drift of each Casimir from its initial value (same layout as ``casimirs``)."""

        def rel(c):
            c0 = c[..., :1]
            return jnp.abs(c - c0) / jnp.maximum(jnp.abs(c0), jnp.finfo(c.dtype).tiny)

        return jax.tree.map(rel, self.casimirs)

    @property
    def energy_error(self):
        """Relative energy error |H(t) - H(0)| / |H(0)| at each saved time (time is the last axis of
        ``energies``, also for a vmapped Solution); H(0) is the first saved energy."""
        e0 = self.energies[..., :1]
        return jnp.abs(self.energies - e0) / jnp.maximum(jnp.abs(e0), jnp.finfo(self.energies.dtype).tiny)

    def _replace(self, **changes):
        """A copy with ``changes`` (the NamedTuple spelling, kept for callers that use it)."""
        return dataclasses.replace(self, **changes)

    @property
    def stats(self) -> Stats:
        """:class:`Stats` of this run (per member for a vmapped Solution)."""
        err = self.energy_error
        t = jnp.broadcast_to(self.ts, err.shape)
        tc = t - jnp.mean(t, axis=-1, keepdims=True)
        ec = err - jnp.mean(err, axis=-1, keepdims=True)
        denom = jnp.sum(tc * tc, axis=-1)
        slope = jnp.sum(tc * ec, axis=-1) / jnp.where(denom > 0, denom, 1)
        return Stats(self.steps, jnp.max(err, axis=-1), slope, self.backend)

    def plot_energy(self, ax=None, members=6):
        """Plot the relative energy error vs time (log scale) on ``ax`` (a new figure if None); returns ax."""
        import numpy as np

        ax = _axes(ax)
        t, err = np.asarray(self.ts), np.asarray(self.energy_error)
        err, t = err.reshape(-1, err.shape[-1]), t.reshape(-1, t.shape[-1])
        floor = np.finfo(err.dtype).eps / 4  # an exact 0 error would fall off the log scale
        for i in np.unique(np.linspace(0, err.shape[0] - 1, members).astype(int)):
            ax.semilogy(t[min(i, t.shape[0] - 1)][1:], np.maximum(err[i, 1:], floor), lw=0.8, label=f"member {i}")
        if err.shape[0] > 1:
            ax.legend(fontsize=8)
        ax.set(xlabel="t", ylabel="|H(t) - H(0)| / |H(0)|", title=f"relative energy error ({self.method})")
        return ax

    def plot_phase(self, ax=None, members=24):
        """Plot the phase portrait p vs q of a canonical scalar state (first components otherwise)."""
        import numpy as np

        if self.states is None or not isinstance(self.states, tuple | list) or len(self.states) != 2:
            raise ValueError("plot_phase needs saved (q, p) states; save states (SaveAt without fn) of a "
                             "canonical system")  # fmt: skip
        ax = _axes(ax)
        q, p = (np.asarray(x) for x in self.states)
        t_axis = np.ndim(self.ts) - 1  # leading vmap axes before time
        q, p = (x.reshape(-1, x.shape[t_axis], *x.shape[t_axis + 1 :]) for x in (q, p))
        q, p = (x.reshape(x.shape[0], x.shape[1], -1)[..., 0] for x in (q, p))
        for i in np.unique(np.linspace(0, q.shape[0] - 1, members).astype(int)):
            ax.plot(q[i], p[i], lw=0.7)
        ax.set(xlabel="q", ylabel="p", title="phase portrait")
        return ax


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Solution plots need matplotlib: pip install matplotlib") from e
    return plt.subplots()[1]


jax.tree_util.register_dataclass(
    Solution,
    data_fields=[
        "ts",
        "states",
        "energies",
        "casimirs",
        "observables",
        "final",
        "t_final",
        "carry",
        "event_happened",
        "event_time",
        "lyapunov",
        "megno",
    ],  # fmt: skip
    meta_fields=["backend", "method", "steps"],
)
