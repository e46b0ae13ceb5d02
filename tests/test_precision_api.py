"""The precision policy through the public API: dtypes in the listing, float32 state, Kahan carry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

jax.config.update("jax_enable_x64", True)


def H(q, p):
    return 0.5 * p**2 + (1.0 - jnp.cos(q))


def test_policy_listing_and_state_dtype():
    s = (jnp.float32(1.0), jnp.float32(0.0))
    comp = tpjax.compile(H, s, precision=tpjax.Precision(grad="float64", step="float32"))
    lines = [ln for ln in str(comp).splitlines() if not ln.startswith(";")]
    assert any("ELEM" in ln and "sin" in ln and ": f64[]" in ln for ln in lines)
    assert all(": f32[]" in ln for ln in lines if "SYMP_STEP" in ln)
    q, p = tpjax.integrate(H, s, dt=0.01, steps=100, precision=tpjax.Precision(grad="float64"))
    assert q.dtype == jnp.float32 and p.dtype == jnp.float32
    q64, p64 = tpjax.integrate(H, (jnp.float64(1.0), jnp.float64(0.0)), dt=0.01, steps=100)
    np.testing.assert_allclose([q, p], [q64, p64], rtol=0, atol=2e-6)  # the float32 run follows float64
    assert abs(float(p64)) > 0.5  # ... along a trajectory that moves


def test_kahan_removes_float32_roundoff_drift():
    s32 = (jnp.float32(1.0), jnp.float32(0.0))
    s64 = (jnp.float64(1.0), jnp.float64(0.0))
    ref = tpjax.integrate(H, s64, dt=1e-3, steps=100_000)
    plain = tpjax.integrate(H, s32, dt=1e-3, steps=100_000)
    comp = tpjax.integrate(H, s32, dt=1e-3, steps=100_000, precision=tpjax.Precision(compensated=True))
    err = lambda x: float(np.max(np.abs(np.asarray(x[0], np.float64) - np.asarray(ref[0]))))
    assert err(comp) * 20 < err(plain), (err(comp), err(plain))


def test_policy_must_match_the_state_dtype():
    with pytest.raises(ValueError, match="precision.step"):
        tpjax.integrate(H, (jnp.float64(1.0), jnp.float64(0.0)), dt=0.1, steps=1,
                        precision=tpjax.Precision(grad="float64", step="float32"))  # fmt: skip
    with pytest.raises(TypeError, match="tpjax.Precision"):
        tpjax.integrate(H, (1.0, 0.0), dt=0.1, steps=1, precision="float64")
