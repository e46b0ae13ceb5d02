"""Time-dependent Hamiltonians H(q, p, t) through the extended phase space.

Time becomes one more coordinate and its conjugate momentum e one more momentum:
  q_ext = (q, t),  p_ext = (p, e),  K(q_ext, p_ext) = H(q, p, t) + e,
so dt/ds = dK/de = 1 (t advances with the flow) and de/ds = -dH/dt. K is autonomous, so every method
integrates it unchanged and stays symplectic in the extended space: for H = T(p) + V(q, t), K = [T(p) + e]
+ V(q, t) is separable, the drifts advance q and t together and the kicks use V at the current t (the
standard splitting of a time-dependent potential); implicit midpoint, Gauss and Tao advance t exactly by
dt per step as well. e starts at 0, so H(q, p, t) = K - e at every saved state.

How H's arity is read: for a canonical structure, H is time-dependent when its signature
(``inspect.signature``) has exactly three positional parameters without defaults, ``H(q, p, t)``;
``H(q, p)`` and ``H(q, p, alpha=0.25)`` are autonomous. Callables without a readable signature are
autonomous. Reference: Hairer, Lubich, Wanner, Geometric Numerical Integration, sec. VI.10 (non-autonomous
problems); Leimkuhler & Reich, Simulating Hamiltonian Dynamics (2004), sec. 8.1.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .structures import resolve


def takes_time(H, structure="canonical") -> bool:
    """Is ``H`` an ``H(q, p, t)`` for this structure? (3 positional parameters without defaults.)"""
    if not resolve(structure).canonical:
        return False
    try:
        sig = inspect.signature(H)
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in sig.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty]
    return len(required) == 3


def _identity_restore(t0):
    def restore(out):
        if hasattr(out, "ts") and hasattr(out, "_replace"):  # a Solution: times start at t0
            return out._replace(ts=out.ts + jnp.asarray(t0, out.ts.dtype))
        return out

    return restore


def extend(H, state, t0, structure="canonical"):
    """``(H_ext, state_ext, restore)``: an autonomous problem equivalent to ``H`` from ``state`` at ``t0``.

    For an autonomous ``H`` it returns ``H`` and ``state`` unchanged (``restore`` shifts a Solution's times
    by t0). For ``H(q, p, t)`` it returns K(q_ext, p_ext) = H(q, p, t) + e on q_ext = (ravel(q), t),
    p_ext = (ravel(p), e = 0); ``restore`` maps a final extended state back to ``state``'s form, or a
    Solution back to the saved (q, p), H(q, p, t) as the energies and times starting at t0.
    """
    if not takes_time(H, structure):
        return H, state, _identity_restore(t0)
    if not isinstance(state, tuple | list) or len(state) != 2:
        raise TypeError(f"a time-dependent H(q, p, t) needs a canonical state (q, p); got {type(state).__name__}")
    q, p = state
    qf, unravel_q = ravel_pytree(q)
    pf, unravel_p = ravel_pytree(p)
    if not jnp.issubdtype(qf.dtype, jnp.floating):
        raise TypeError(f"state q must be floating point for a time-dependent H, got {qf.dtype}")
    if jnp.ndim(t0) != 0:
        raise ValueError(f"t0 must be a scalar time, got shape {jnp.shape(t0)}; vmap over t0 for ensembles")
    t0 = jnp.asarray(t0, qf.dtype)
    n = qf.shape[0]
    if pf.shape != qf.shape or pf.dtype != qf.dtype:
        raise ValueError(f"state: q and p must have the same size and dtype, got {qf.shape}/{qf.dtype} and "
                         f"{pf.shape}/{pf.dtype}")  # fmt: skip

    def K(qe, pe):
        return H(unravel_q(qe[:n]), unravel_p(pe[:n]), qe[n]) + pe[n]

    K.__name__ = getattr(H, "__name__", "H") + "_extended"
    state_ext = (jnp.concatenate([qf, t0[None]]), jnp.concatenate([pf, jnp.zeros((1,), pf.dtype)]))

    st = resolve(structure)

    def pack(qe, pe):
        return st.pack((unravel_q(qe[:n]), unravel_p(pe[:n])), state)

    def restore(out):
        if hasattr(out, "ts") and hasattr(out, "_replace"):  # a Solution
            Q, P = out.states
            return out._replace(ts=out.ts + t0, states=jax.vmap(pack)(Q, P), energies=out.energies - P[..., n])
        return pack(*out)

    return K, state_ext, restore
