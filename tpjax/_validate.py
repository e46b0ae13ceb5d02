"""Argument checks for the public API. Every error names the argument, what was expected, and the fix."""

from __future__ import annotations

import contextlib
import math
import numbers
import re
import types

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
    n = _steps(n)
    if n >= 2**31 and not jax.config.jax_enable_x64:
        raise ValueError(f"steps={n} does not fit the int32 loop counter JAX uses with x64 off; call integrate "
                         "several times with fewer steps each (passing the final state on), or enable "
                         "jax.config.update('jax_enable_x64', True)")  # fmt: skip
    return n


def _steps(n) -> int:
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


def dt(value, dtype, convert: bool = True):
    """``dt=`` as a scalar of the state dtype: a real, finite number (checked when concrete; with
    ``convert=False`` only checked, for the cached eager path, which passes dt on as it is)."""
    kind = getattr(value, "dtype", None)
    if kind is None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        raise TypeError(f"dt must be a real number (the step size), got {value!r} of type {type(value).__name__}; "
                        "e.g. dt=0.01")  # fmt: skip
    if kind is not None and not (jnp.issubdtype(kind, jnp.floating) or jnp.issubdtype(kind, jnp.integer)):
        raise TypeError(f"dt must be real, got dtype {kind}; the state is real, so a complex dt would lose its "
                        "imaginary part: pass the real step size")  # fmt: skip
    if isinstance(value, jax.core.Tracer):
        if jnp.ndim(value) != 0:
            raise ValueError(f"dt must be a scalar, got shape {jnp.shape(value)}; vmap over dt for ensembles")
        return value.astype(dtype)
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"dt must be a scalar, got shape {v.shape}; use jax.vmap for per-member dt")
    if not np.isfinite(v):
        raise ValueError(f"dt must be finite, got {value!r}")
    with np.errstate(over="ignore"):
        cast = np.asarray(v, dtype=jnp.dtype(dtype))
    if not np.isfinite(cast):
        top = float(jnp.finfo(dtype).max)
        raise ValueError(f"dt={value!r} overflows the state dtype {jnp.dtype(dtype).name} (max {top:.3g}); use "
                         "a smaller dt, or a float64 state with x64 enabled")  # fmt: skip
    return jnp.asarray(cast, dtype=dtype) if convert else None


#: state dtypes tpjax integrates. float16 / bfloat16 are refused: their 5 / 8 exponent bits overflow in
#: gradients of ordinary Hamiltonians (float16 gives NaN after one step) and 3 significant digits lose
#: the structure the methods preserve.
STATE_DTYPES = ("float32", "float64")


def state_dtype(parts, names) -> None:
    for x, n in zip(parts, names, strict=True):
        if jnp.dtype(x.dtype).name not in STATE_DTYPES:
            raise TypeError(f"state {n} is {jnp.dtype(x.dtype).name}; tpjax integrates float32 (the default) or "
                            f"float64 states. Cast it, e.g. {n}.astype(jnp.float32), and cast the result back if "
                            "you need the low-precision type")  # fmt: skip


def finite_state(parts, names) -> None:
    """Concrete state parts must be finite (a NaN/Inf start gives a NaN run, or a misleading solver error)."""
    for x, n in zip(parts, names, strict=True):
        if isinstance(x, jax.core.Tracer):
            continue
        bad = ~np.isfinite(np.asarray(x))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"state {n} is not finite: {n}{list(idx) if idx else ''} = {np.asarray(x)[idx]}; "
                             "pass a finite initial state")  # fmt: skip


def hamiltonian(H, parts) -> None:
    """H must be callable and return ONE real floating scalar for the state parts."""
    if not callable(H):
        raise TypeError(f"H must be a callable H(q, p) -> scalar, got {type(H).__name__}")
    avals = [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in parts]
    out = jax.eval_shape(lambda *xs: H(*xs), *avals)
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(f"H must return one scalar energy, got a {type(out).__name__} "
                        f"({jax.tree.structure(out)}); return their sum, e.g. T + V")  # fmt: skip
    energy_aval(types.SimpleNamespace(energy_aval=out))


def energy_aval(traced) -> None:
    a = traced.energy_aval
    if a.shape != ():
        raise ValueError(f"H must return a scalar energy, got shape {a.shape}; reduce it, e.g. jnp.sum(...)")
    if jnp.issubdtype(a.dtype, jnp.complexfloating):
        raise TypeError(f"H must return a real energy, got {a.dtype}; a Hamiltonian is real: return e.g. "
                        "jnp.real(...) or |.|^2 of the complex quantity")  # fmt: skip
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError(f"H must return a floating-point scalar, got {a.dtype}; e.g. cast it with .astype(float)")


#: platform names of Apple-GPU plugins: jax-metal (METAL, unmaintained), jax-mps (mps), metaljax (metal),
#: jax-graft (mtl). None of them runs float64.
METAL_PLATFORMS = ("METAL", "mps", "metal", "mtl")


def metal_dtype(parts, platform: str | None = None) -> None:
    platform = jax.default_backend() if platform is None else platform
    if platform in METAL_PLATFORMS and any(jnp.dtype(x.dtype) == jnp.float64 for x in parts):
        raise TypeError(f"state is float64 but the default backend {platform!r} is an Apple-GPU (Metal) "
                        "plugin, which has no float64; cast the state to float32 or run on the CPU")  # fmt: skip


class NonFiniteError(FloatingPointError):
    """A state became NaN or Inf during a run with ``check=True`` (raised with the member and the step)."""


@contextlib.contextmanager
def raising_non_finite():
    """Eagerly, the host callback's NonFiniteError arrives as a JaxRuntimeError: raise it as itself."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        found = re.search(r"NonFiniteError: (.*)", str(e))
        if found is None:
            raise
        raise NonFiniteError(found.group(1)) from None


def check_every(n: int) -> int:
    """The save interval of a checked run: the divisor of ``n`` nearest sqrt(n) from below (so the run stores
    about sqrt(n) states and the first non-finite one is located to within that many steps)."""
    r = max(1, math.isqrt(n))
    return next(k for k in range(r, 0, -1) if n % k == 0)


def _bad_rows(xs, shapes):
    """(batch, bad): bad[..., t] is True where row t of any part (T, *shape), after batch axes, is non-finite."""
    lead = [np.shape(x)[: np.ndim(x) - 1 - len(s)] for x, s in zip(xs, shapes, strict=True)]
    batch = np.broadcast_shapes(*lead)
    bad = np.zeros(batch + (np.shape(xs[0])[-1 - len(shapes[0])],), bool)
    for x, s in zip(xs, shapes, strict=True):
        bad |= ~np.isfinite(np.asarray(x)).reshape(*np.shape(x)[: np.ndim(x) - len(s)], -1).all(-1)
    return batch, bad


def first_bad_row(saved):
    """The first row of the saved parts (T, *part) that is non-finite (0 when none is)."""
    rows = [~jnp.all(jnp.isfinite(a.reshape(a.shape[0], -1)), axis=1) for a in saved]
    return jnp.argmax(jnp.any(jnp.stack(rows), axis=0))


def guard(saved: tuple, every: int, names, dt, fine: tuple | None = None):
    """A zero scalar whose computation raises NonFiniteError (through a host callback, so also under jit and
    vmap) when ``dt`` or a saved state is NaN/Inf; add it to the result so it runs. ``saved``: one array per
    part, (T, *part) with row t the state after (t + 1) * every steps; ``fine``: the ``every`` states after
    the last finite saved one, step by step (re-run from it), which pin the step down exactly."""
    shapes = [tuple(a.shape[1:]) for a in saved]
    n = len(saved)

    def host(d, *xs):
        batch, bad = _bad_rows(xs[:n], shapes)
        batch = np.broadcast_shapes(batch, np.shape(d))
        bad = np.broadcast_to(bad, batch + bad.shape[-1:])
        bad_dt = ~np.isfinite(np.broadcast_to(np.asarray(d), batch))
        if not (bad.any() or bad_dt.any()):
            return np.zeros(batch, np.float32)
        member = tuple(int(i) for i in np.argwhere(bad.any(-1) | bad_dt)[0])
        who = f"ensemble member {member}" if member else "the state"
        if bad_dt[member]:
            raise NonFiniteError(f"check=True: dt is {np.broadcast_to(np.asarray(d), batch)[member]} for {who}; "
                                 "pass a finite dt")  # fmt: skip
        t = int(np.argmax(bad[member]))
        lo, hi = t * every, (t + 1) * every
        when = f"at step {hi}" if every == 1 else f"between step {lo} (finite) and step {hi}"
        if fine is not None:
            fb = np.broadcast_to(_bad_rows(xs[n:], shapes)[1], batch + (every,))[member]
            if fb.any():
                when = f"at step {lo + int(np.argmax(fb)) + 1} (finite at step {lo + int(np.argmax(fb))})"
        raise NonFiniteError(
            f"check=True: {who} became NaN/Inf {when}. Common causes: the orbit reaches a singularity of H "
            "(e.g. r = 0 in a Kepler potential), dt too large for the dynamics, or float32 overflow; try a "
            "smaller dt, regularise H, or float64 (jax_enable_x64)"
        )

    args = [jnp.asarray(dt), *saved, *(fine or ())]
    args = [jax.lax.stop_gradient(a) for a in args]
    return jax.pure_callback(host, jax.ShapeDtypeStruct((), jnp.float32), *args, vmap_method="expand_dims")
