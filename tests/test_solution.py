"""Solution: a jit/vmap pytree with static backend metadata, run stats and plots."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def test_solution_is_a_pytree_with_static_metadata_and_stats():
    q0 = jnp.linspace(0.5, 2.5, 3)
    sol = jax.jit(jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=0.05, steps=200, save_every=10)))(q0)
    assert (sol.backend, sol.method, sol.steps) == ("xla", "leapfrog", 200)
    leaves, treedef = jax.tree.flatten(sol)
    assert all(isinstance(x, jax.Array) for x in leaves)  # no strings among the leaves
    assert jax.tree.unflatten(treedef, leaves).backend == "xla"
    st = sol.stats
    err, ts = np.asarray(sol.energy_error), np.asarray(sol.ts)
    np.testing.assert_allclose(st.max_energy_error, err.max(-1), rtol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(st.drift_rate[i], np.polyfit(ts[i], err[i], 1)[0], rtol=1e-3, atol=1e-9)
    assert st.steps == 200 and st.backend == "xla"


def test_plots_draw_and_name_matplotlib_when_missing(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    sol = jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=0.05, steps=100, save_every=5))(
        jnp.linspace(0.5, 2.5, 4)
    )
    ax = sol.plot_energy()
    assert len(ax.lines) == 4 and ax.get_yscale() == "log"
    ax = sol.plot_phase(members=2)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), sol.states[0][0])
    obs = tpjax.trajectory(pendulum, (1.0, 0.0), dt=0.05, steps=10, saveat=tpjax.SaveAt(t1=True, fn=lambda t, s: s[0]))
    with pytest.raises(ValueError, match="plot_phase needs saved"):
        obs.plot_phase()
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        sol.plot_energy()
