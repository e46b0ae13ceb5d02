"""Tangent maps: the variational equations alongside the flow, Lyapunov exponents and MEGNO.

The tangent map of one step z -> Phi(z) is its derivative, and its action on a tangent vector v is the
JVP: (Phi(z), DPhi(z) v) = jax.jvp(step, z, v). For a symplectic step DPhi(z) is a symplectic matrix,
so the discrete variational equations are exactly those of the symplectic map (no separate integration
of the variational ODE, no loss of structure). The vector is renormalised to unit length after every
step and the logarithms of the growth factors are summed:
  lambda(t) = (1 / t) sum_k ln |v_{k+1}| / |v_k|          (largest Lyapunov exponent, as t -> infinity),
  Y(t) = (2 / t) int_0^t (v'.v / v.v) s ds,  <Y>(t) = (1 / t) int_0^t Y(s) ds     (MEGNO),
with the integral over one step taken as ln(|v_{k+1}| / |v_k|) (t_k + dt / 2) (exact when |v| grows
exponentially across the step). <Y> tends to 2 on quasi-periodic orbits, to 0 on stable isochronous ones
(the harmonic oscillator) and grows like lambda t / 2 on chaotic ones.
The norm is taken over the state parts only (a carried FSAL force or Tao's copy follows its own tangent).

Reference: Benettin, Galgani, Giorgilli, Strelcyn, Meccanica 15 (1980) 9 (renormalisation); Cincotta &
Simo, Astron. Astrophys. Suppl. 147 (2000) 205 (MEGNO); Rein & Tamayo, MNRAS 452 (2015) 376 (MEGNO as
REBOUND defines it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _validate as check
from . import time_dependent
from .compiler import compile_hamiltonian
from .executors import for_xla
from .structures import resolve


def _initial_tangent(parts, v0):
    if v0 is None:  # a fixed, generic direction (reproducible)
        keys = jax.random.split(jax.random.key(0), len(parts))
        v0 = tuple(jax.random.normal(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, parts, strict=True))
    v0 = tuple(jnp.asarray(v, jnp.result_type(x)) for v, x in zip(v0, parts, strict=True))
    if any(jnp.shape(v) != jnp.shape(x) for v, x in zip(v0, parts, strict=True)):
        raise ValueError("tangent0 must have one array per state part, each of that part's shape")
    return v0


def run(comp, parts, dt, *, steps: int, save_every: int | None = None, tangent0=None):
    """Run ``steps`` steps of ``comp`` with a tangent vector alongside.

    Returns ``(final_parts, saved, lyapunov, megno)``: with ``save_every``, ``saved`` holds the state parts
    after every ``save_every`` steps (as executors do) and ``lyapunov``, ``megno`` the running estimates
    at the initial time (0 by convention) and at each saved time; without it, ``saved`` is None and the two
    are the final estimates (scalars).
    """
    stepper = comp.method.stepper(for_xla(comp))
    params, n = stepper.params, stepper.n_parts
    v0 = _initial_tangent(tuple(parts), tangent0)
    z0, w0 = jax.jvp(lambda *xs: tuple(stepper.initial(params, xs)), tuple(parts), v0)
    norm = lambda w: jnp.sqrt(sum(jnp.sum(jnp.square(a)) for a in w[:n]))
    w0 = tuple(a / norm(w0) for a in w0)
    h = jnp.abs(dt)
    zero = jnp.zeros((), h.dtype)

    def one(carry, _):
        z, w, k, logsum, integral, ysum = carry
        z, w = jax.jvp(lambda *zs: tuple(stepper.step(params, zs, dt)), tuple(z), tuple(w))
        r = norm(w)
        lr = jnp.log(r)
        t = k * h
        integral = integral + 2.0 * lr * (t + h / 2)
        k = k + 1
        ysum = ysum + integral / (k * h)
        return (z, tuple(a / r for a in w), k, logsum + lr, integral, ysum), None

    def estimates(c):
        _, _, k, logsum, _, ysum = c
        return logsum / (k * h), ysum / k

    carry = (tuple(z0), w0, zero, zero, zero, zero)
    if save_every is None:
        carry, _ = jax.lax.scan(one, carry, None, length=steps)
        lam, meg = estimates(carry) if steps else (zero, zero)
        return tuple(carry[0][:n]), None, lam, meg

    def block(c, _):
        c, _ = jax.lax.scan(one, c, None, length=save_every)
        return c, (tuple(c[0][:n]), *estimates(c))

    carry, (saved, lam, meg) = jax.lax.scan(block, carry, None, length=steps // save_every)
    lam, meg = jnp.concatenate([zero[None], lam]), jnp.concatenate([zero[None], meg])
    return tuple(carry[0][:n]), saved, lam, meg


def attach(sol, comp, parts, dt, steps: int, save_every: int, tangent0=None):
    """``sol`` with ``lyapunov`` and ``megno`` filled in at its saved times (a second, tangent run)."""
    if not steps:
        zero = jnp.zeros((1,), sol.ts.dtype)
        return sol._replace(lyapunov=zero, megno=zero)
    _, _, lam, meg = run(comp, parts, dt, steps=steps, save_every=save_every, tangent0=tangent0)
    return sol._replace(lyapunov=lam, megno=meg)


def _prepare(H, state, dt, steps, method, structure):
    st = resolve(structure)
    parts = st.check_state(state)
    H = st.wrap_hamiltonian(H, state)
    integ = check.method(method, st, H, parts)
    comp = compile_hamiltonian(H, parts, integ, st)
    check.energy_aval(comp.traced)
    st.check(comp.traced)
    integ.check(comp)
    return comp, parts, check.steps(steps), check.dt(dt, parts[0].dtype)


def variational(H, state, *, dt, steps: int, method=None, structure="canonical", tangent0=None, t0=0.0):
    """``(lyapunov, megno)`` after ``steps`` steps: the largest-Lyapunov-exponent estimate and MEGNO <Y>.

    Arguments as :func:`tpjax.integrate`; ``tangent0``: the initial tangent vector, one array per state
    part (default: a fixed generic direction). Works under jit and vmap. For a time-dependent H(q, p, t)
    the tangent lives in the extended phase space (q, t; p, e) of ``tpjax.time_dependent`` (``tangent0``
    then has one more entry per part, for t and e).
    """
    H, state, _ = time_dependent.extend(H, state, t0, structure)
    comp, parts, steps, dt = _prepare(H, state, dt, steps, method, structure)
    if steps == 0:
        raise ValueError("steps must be > 0 to estimate a Lyapunov exponent")
    _, _, lam, meg = run(comp, parts, dt, steps=steps, tangent0=tangent0)
    return lam, meg


def lyapunov(H, state, *, dt, steps: int, method=None, structure="canonical", tangent0=None, t0=0.0):
    """The largest Lyapunov exponent of the orbit from ``state``, estimated over ``steps`` steps of ``dt``
    by the tangent map of the (symplectic) step with renormalisation every step. ~0 (decaying like
    ln(t) / t) on regular orbits, positive on chaotic ones. See :func:`variational`."""
    return variational(H, state, dt=dt, steps=steps, method=method, structure=structure, tangent0=tangent0, t0=t0)[0]


def megno(H, state, *, dt, steps: int, method=None, structure="canonical", tangent0=None, t0=0.0):
    """MEGNO <Y> (Cincotta & Simo 2000) of the orbit from ``state`` after ``steps`` steps: -> 2 on
    quasi-periodic orbits, -> 0 on isochronous ones, ~ lambda t / 2 on chaotic ones. See :func:`variational`."""
    return variational(H, state, dt=dt, steps=steps, method=method, structure=structure, tangent0=tangent0, t0=t0)[1]
