"""Continuing a run from its Solution: loops of short calls equal one long call bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

jax.config.update("jax_enable_x64", True)


def pendulum(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("method", ["leapfrog", "yoshida4"])
def test_short_calls_equal_one_long_call_bit_for_bit(dtype, method):
    s0 = (jnp.asarray(1.3, dtype), jnp.asarray(0.2, dtype))
    kw = dict(dt=0.05, method=method)
    long = tpjax.trajectory(pendulum, s0, steps=400, save_every=10, **kw)
    sol, parts = tpjax.trajectory(pendulum, s0, steps=100, save_every=10, **kw), []
    parts.append(sol.states[0])
    for _ in range(3):
        sol = tpjax.trajectory(pendulum, sol, steps=100, save_every=10, **kw)
        parts.append(sol.states[0][1:])
    np.testing.assert_array_equal(sol.final[0], long.final[0])
    np.testing.assert_array_equal(sol.final[1], long.final[1])
    np.testing.assert_array_equal(sol.carry[0], long.carry[0])  # the carried FSAL force
    np.testing.assert_array_equal(np.concatenate(parts), long.states[0])
    np.testing.assert_allclose(sol.ts, long.ts[-11:], rtol=1e-6 if dtype == jnp.float32 else 1e-13)
    step = jax.jit(lambda s: tpjax.integrate(pendulum, s, steps=100, **kw))  # integrate continues a Solution too
    first = tpjax.trajectory(pendulum, s0, steps=100, save_every=100, **kw)
    np.testing.assert_array_equal(step(first)[0], tpjax.integrate(pendulum, s0, steps=200, **kw)[0])


def test_jit_vmap_resume_and_no_prologue_recomputed():
    q0 = jnp.linspace(0.5, 2.0, 4)
    start = jax.vmap(lambda q: tpjax.trajectory(pendulum, (q, 0 * q), dt=0.02, steps=50, save_every=50))(q0)
    more = jax.jit(jax.vmap(lambda s: tpjax.trajectory(pendulum, s, dt=0.02, steps=50, save_every=50)))(start)
    long = jax.vmap(lambda q: tpjax.integrate(pendulum, (q, 0 * q), dt=0.02, steps=100))(q0)
    np.testing.assert_array_equal(more.final[0], long[0])
    # the fresh run computes the FSAL prologue force (one more gradient) than the continued one
    count = lambda f, x: sum(e.primitive.name.startswith("tp_") for e in jax.make_jaxpr(f)(x).eqns)  # outside the loop
    fresh = count(lambda q: tpjax.integrate(pendulum, (q, 0.0), dt=0.02, steps=50), 1.0)
    one = jax.tree.map(lambda x: x[0], start)
    cont = count(lambda s: tpjax.integrate(pendulum, s, dt=0.02, steps=50), one)
    assert fresh > 0 and cont == 0


def test_resume_refuses_another_method():
    sol = tpjax.trajectory(pendulum, (1.0, 0.0), dt=0.05, steps=10, method="yoshida4")
    with pytest.raises(ValueError, match="method='yoshida4'"):
        tpjax.trajectory(pendulum, sol, dt=0.05, steps=10, method="leapfrog")
    restart = tpjax.trajectory(pendulum, sol.final, dt=0.05, steps=10, method="leapfrog")  # the documented fix
    assert restart.ts[0] == 0.0


def test_compensated_registers_and_save_times_continue():
    s32 = (jnp.float32(1.0), jnp.float32(0.0))
    kw = dict(dt=0.01, precision=tpjax.Precision(compensated=True))
    sol = tpjax.trajectory(pendulum, s32, steps=300, **kw)
    assert len(sol.carry) >= 2  # the force and the Kahan compensations are carried
    sol = tpjax.trajectory(pendulum, sol, steps=300, saveat=tpjax.SaveAt(ts=[4.0, 6.0]), **kw)
    long = tpjax.trajectory(pendulum, s32, steps=600, **kw)
    np.testing.assert_array_equal(sol.final[0], long.final[0])
    np.testing.assert_array_equal(sol.states[0], long.states[0][np.array([400, 600])])  # absolute times
