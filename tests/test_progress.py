"""Progress bars: produced from inside jit, one bar under vmap, nothing in the program when off."""

import io

import jax
import jax.numpy as jnp
import numpy as np

import tpjax


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def test_bar_under_jit_and_vmap_is_one_bar_and_changes_no_number():
    f = io.StringIO()
    q0 = jnp.linspace(0.1, 2.0, 16)
    run = lambda progress: jax.jit(jax.vmap(lambda q: tpjax.integrate(pendulum, (q, 0 * q), dt=0.01, steps=1000,
                                                                      progress=progress)))  # fmt: skip
    on, off = run({"file": f, "desc": "pendula"})(q0), run(False)(q0)
    np.testing.assert_array_equal(on[0], off[0])
    out = f.getvalue()
    assert out.count("| 0/1000") == 1, out  # one bar opened for the whole ensemble
    assert "pendula" in out and "1000/1000" in out and "100%" in out
    f.truncate(0)
    run({"file": f})(q0)  # the compiled program reopens a bar on every run
    assert "1000/1000" in f.getvalue()


def test_trajectory_bar_with_saving_and_observables():
    f = io.StringIO()
    sol = jax.jit(lambda q: tpjax.trajectory(pendulum, (q, 0.0), dt=0.01, steps=500, save_every=50,
                                             progress={"file": f}))(1.0)  # fmt: skip
    ref = tpjax.trajectory(pendulum, (1.0, 0.0), dt=0.01, steps=500, save_every=50)
    np.testing.assert_array_equal(sol.states[0], ref.states[0])
    assert "500/500" in f.getvalue()


def test_off_adds_nothing_to_the_program():
    prog = lambda progress: str(jax.make_jaxpr(lambda q: tpjax.integrate(pendulum, (q, 0.0), dt=0.01, steps=100,
                                                                         progress=progress))(1.0))  # fmt: skip
    assert "callback" not in prog(False)
    assert "callback" in prog({"file": io.StringIO()})
