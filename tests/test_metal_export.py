"""Metal path: tpjax lowers to portable StableHLO (no custom calls, no f64 for float32 states), exported
on CPU for the Apple-GPU plugins' platform names. Not run on Apple hardware."""

import jax
import jax.numpy as jnp
import pytest
from jax import export

import tpjax
from tpjax import _validate

PLATFORMS = ["METAL", "mps", "metal", "mtl"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("structure", ["canonical", "so3"])
def test_export_is_portable_stablehlo(platform, structure):
    with jax.enable_x64(False):
        if structure == "canonical":
            H, s = (
                (lambda q, p: jnp.sum(0.5 * p**2 - jnp.cos(q))),
                (jnp.ones(4, jnp.float32), jnp.zeros(4, jnp.float32)),
            )
        else:
            H, s = (lambda L: 0.5 * jnp.sum(L**2 / jnp.array([1.0, 2.0, 3.0]))), jnp.ones(3, jnp.float32)
        method = "leapfrog" if structure == "canonical" else "rigid_body"
        f = jax.jit(lambda s: tpjax.integrate(H, s, dt=0.01, steps=20, structure=structure, method=method))
        text = export.export(f, platforms=[platform])(s).mlir_module()
    assert "custom_call" not in text
    assert "f64" not in text
    assert "stablehlo" in text


def test_float64_on_metal_is_refused_clearly():
    with jax.enable_x64(True):
        parts = (jnp.ones(2, jnp.float64), jnp.ones(2, jnp.float64))
        with pytest.raises(TypeError, match="float64.*Metal"):
            _validate.metal_dtype(parts, platform="mps")
        _validate.metal_dtype(parts, platform="cpu")  # no error elsewhere
