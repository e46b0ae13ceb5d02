"""Argument checks for the public API. Every error names the argument, what was expected, and the fix."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from .integrators import METHODS, AbstractIntegrator

STRUCTURES = ("canonical", "so3", "se3")  # or a callable J(z) returning a skew matrix ("poisson")


def method(m, structure: str) -> AbstractIntegrator:
    if isinstance(m, AbstractIntegrator):
        integ = m
    elif isinstance(m, str) and m in METHODS:
        integ = METHODS[m]
    else:
        names = sorted(k for k, v in METHODS.items() if structure in v.structures)
        raise ValueError(f"method={m!r} is not a known integrator; use one of {names} or an integrator object")
    if structure not in integ.structures:
        names = sorted(k for k, v in METHODS.items() if structure in v.structures)
        raise ValueError(
            f"method={integ.name!r} does not apply to structure={structure!r}; for that structure use one of {names}"
        )
    return integ


def structure(s) -> str:
    if callable(s):
        return "poisson"
    if s not in STRUCTURES:
        raise ValueError(f"structure={s!r} is not known; use one of {STRUCTURES} or a function J(z) -> (n, n) skew")
    return s


def poisson_state(state):
    z = _array(state, "z")
    if z.ndim != 1:
        raise ValueError(f"state z must be a vector (n,) for a generic Poisson structure J(z), got {z.shape}")
    return z


def skew(J, z) -> None:
    """J(z) must be an (n, n) skew-symmetric matrix (checked at z when concrete)."""
    from .structures.lie_poisson import check_skew

    check_skew(J, z, name="structure J")


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


def canonical_state(state) -> tuple:
    if not isinstance(state, tuple | list) or len(state) != 2:
        raise TypeError(
            f"state must be a (q, p) pair for structure='canonical', got {type(state).__name__}"
            + (f" of length {len(state)}" if isinstance(state, tuple | list) else "")
            + "; pass tpjax.integrate(H, (q, p), ...) or choose structure='so3' for a single vector L"
        )
    q, p = (_array(x, n) for x, n in zip(state, ("q", "p"), strict=True))
    if q.shape != p.shape:
        raise ValueError(f"state: q and p must have the same shape, got q{q.shape} and p{p.shape}")
    if q.dtype != p.dtype:
        raise ValueError(f"state: q and p must have the same dtype, got {q.dtype} and {p.dtype}; cast one")
    return q, p


def so3_state(state):
    L = _array(state, "L")
    if L.shape[-1:] != (3,) or L.ndim != 1:
        raise ValueError(f"state L must have shape (3,) for structure='so3', got {L.shape}; vmap for ensembles")
    return L


def se3_state(state) -> tuple:
    if not isinstance(state, tuple | list) or len(state) != 2:
        raise TypeError("state must be an (L, Gamma) pair of (3,) arrays for structure='se3' (the heavy top)")
    L, G = (_array(x, n) for x, n in zip(state, ("L", "Gamma"), strict=True))
    if L.shape != (3,) or G.shape != (3,) or L.dtype != G.dtype:
        raise ValueError(f"state: L and Gamma must both be (3,) of one dtype, got {L.shape} {L.dtype} and "
                         f"{G.shape} {G.dtype}; vmap for ensembles")  # fmt: skip
    return L, G


def _array(x, name: str):
    if not hasattr(x, "dtype"):
        if isinstance(x, numbers.Number):
            x = jnp.asarray(x, dtype=jax.dtypes.canonicalize_dtype(float))
        else:
            raise TypeError(f"state {name} must be an array or a number, got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"state {name} must be floating point, got {x.dtype}; e.g. {name}.astype(jnp.float32)")
    return x


def energy_aval(traced) -> None:
    a = traced.energy_aval
    if a.shape != ():
        raise ValueError(f"H must return a scalar energy, got shape {a.shape}; reduce it, e.g. jnp.sum(...)")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError(f"H must return a floating-point scalar, got {a.dtype}")


def separable(traced, integ) -> None:
    if getattr(integ, "explicit", False) and (traced.depends(0, 1) or traced.depends(1, 0)):
        raise ValueError(
            f"method={integ.name!r} is an explicit splitting and needs a separable H(q, p) = T(p) + V(q), "
            "but dH/dq depends on p (found in the jaxpr of H). An explicit method would silently lose "
            "symplecticity; use method='implicit_midpoint' for non-separable H"
        )


#: platform names of Apple-GPU plugins: jax-metal (METAL, unmaintained), jax-mps (mps), metaljax (metal),
#: jax-graft (mtl). None of them runs float64.
METAL_PLATFORMS = ("METAL", "mps", "metal", "mtl")


def metal_dtype(parts, platform: str | None = None) -> None:
    platform = jax.default_backend() if platform is None else platform
    if platform in METAL_PLATFORMS and any(jnp.dtype(x.dtype) == jnp.float64 for x in parts):
        raise TypeError(f"state is float64 but the default backend {platform!r} is an Apple-GPU (Metal) "
                        "plugin, which has no float64; cast the state to float32 or run on the CPU")  # fmt: skip
