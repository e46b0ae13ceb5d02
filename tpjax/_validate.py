"""Argument checks for the public API. Every error names the argument, what was expected, and the fix."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .integrators import METHODS, AbstractIntegrator


def method(m, structure, H=None, parts=None, precision=None) -> AbstractIntegrator:
    """``method=`` as an integrator for ``structure`` (None: the structure's default for ``H``)."""
    if m is None:
        m = structure.default_method if H is None else structure.default_method_for(H, parts, precision)
    names = sorted(k for k, v in METHODS.items() if v.applies_to(structure))
    if isinstance(m, AbstractIntegrator):
        integ = m
    elif isinstance(m, str) and m in METHODS:
        integ = METHODS[m]
    else:
        raise ValueError(f"method={m!r} is not a known integrator; use one of {names} or an integrator object")
    if not integ.applies_to(structure):
        raise ValueError(
            f"method={integ.name!r} does not apply to structure={structure.name!r}; for that structure use one of "
            f"{names}"
        )
    return integ


def precision(policy, parts):
    """``precision=`` checked against the state dtype (None passes)."""
    if policy is None:
        return None
    from .precision import Precision

    if not isinstance(policy, Precision):
        raise TypeError(f"precision must be a tpjax.Precision, got {type(policy).__name__}")
    policy.check()
    if jnp.dtype(parts[0].dtype).name != policy.step:
        raise ValueError(f"precision.step={policy.step!r} but the state is {parts[0].dtype}; cast the state to "
                         "the step dtype")  # fmt: skip
    return policy


def steps(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        if isinstance(n, jax.core.Tracer):
            raise TypeError("steps must be a static Python int (it sets the loop length); mark it static "
                            "in jax.jit (static_argnums) instead of tracing it")  # fmt: skip
        raise TypeError(f"steps must be a non-negative Python int, got {n!r} of type {type(n).__name__}")
    if n < 0:
        raise ValueError(f"steps must be >= 0, got {n}; to integrate backward in time use a negative dt")
    return int(n)


def save_every(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"save_every must be a positive int, got {k!r}")
    if n % k:
        raise ValueError(f"save_every={k} must divide steps={n}; e.g. steps={n - n % k or k}")
    return int(k)


def dt(value, dtype):
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise ValueError(f"dt must be a scalar, got shape {jnp.shape(value)}; vmap over dt for ensembles")
        return value.astype(dtype)
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"dt must be a scalar, got shape {v.shape}; use jax.vmap for per-member dt")
    if not np.isfinite(v):
        raise ValueError(f"dt must be finite, got {value!r}")
    return jnp.asarray(v, dtype=dtype)


def energy_aval(traced) -> None:
    a = traced.energy_aval
    if a.shape != ():
        raise ValueError(f"H must return a scalar energy, got shape {a.shape}; reduce it, e.g. jnp.sum(...)")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError(f"H must return a floating-point scalar, got {a.dtype}")


#: platform names of Apple-GPU plugins: jax-metal (METAL, unmaintained), jax-mps (mps), metaljax (metal),
#: jax-graft (mtl). None of them runs float64.
METAL_PLATFORMS = ("METAL", "mps", "metal", "mtl")


def metal_dtype(parts, platform: str | None = None) -> None:
    platform = jax.default_backend() if platform is None else platform
    if platform in METAL_PLATFORMS and any(jnp.dtype(x.dtype) == jnp.float64 for x in parts):
        raise TypeError(f"state is float64 but the default backend {platform!r} is an Apple-GPU (Metal) "
                        "plugin, which has no float64; cast the state to float32 or run on the CPU")  # fmt: skip
