"""Explicit Lie-Poisson splitting integrators for the free rigid body on so(3)*.

H(L) = sum_i L_i^2 / (2 I_i) = H_1 + H_2 + H_3, and L' = L x grad H(L). Each H_i has an exact flow: L_i is
constant and L rotates about body axis e_i by angle -t L_i / I_i. Compositions of these exact flows are
Poisson maps, preserve |L|^2 (every sub-flow is a rotation) and are explicit.
All functions are pure jax.numpy: jit/vmap/grad friendly; dt may be traced; L may carry leading batch
dimensions (..., 3); inertia has shape (3,) (or broadcasts against L).

Reference: R. I. McLachlan, "Explicit Lie-Poisson integration and the Euler equations", Phys. Rev. Lett. 71
(1993) 3043; A. Dullweber, B. Leimkuhler, R. McLachlan, J. Chem. Phys. 107 (1997) 5840;
H. Yoshida, Phys. Lett. A 150 (1990) 262.
"""

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_CBRT2 = 2.0 ** (1.0 / 3.0)
YOSHIDA_W1 = 1.0 / (2.0 - _CBRT2)  # outer sub-steps of the triple jump
YOSHIDA_W0 = -_CBRT2 / (2.0 - _CBRT2)  # middle (backward) sub-step; 2 * W1 + W0 = 1


def rigid_body_energy(L: Array, inertia: Array) -> Array:
    """H(L) = sum_i L_i^2 / (2 I_i). Arguments: L (..., 3), inertia (3,). Returns: (...,)."""
    return 0.5 * jnp.sum(L * L / inertia, axis=-1)


def axis_rotation(L: Array, axis: int, angle: Array) -> Array:
    """Rotate L about body axis `axis` (right-handed) by `angle`.

    With (i, j, k) cyclic, i = axis: L_i is unchanged and
    (L_j, L_k) -> (c L_j - s L_k, s L_j + c L_k), c = cos(angle), s = sin(angle).
    It is evaluated as L + ((c - 1) L_j - s L_k, s L_j + (c - 1) L_k) with c - 1 = -2 sin^2(angle / 2) and
    s = 2 sin(angle / 2) cos(angle / 2): rounding c to the nearest double below 1 would otherwise change
    |L|^2 by up to eps per rotation, with a sign that repeats along a periodic orbit (secular drift).
    Properties: orthogonal (|L| preserved up to one rounding per component), inverted by -angle.
    Arguments: L: (..., 3); axis: static int in {0, 1, 2};
      angle: scalar or (...,), broadcasting with L[..., 0].
    Returns: (..., 3).
    """
    i, j, k = axis, (axis + 1) % 3, (axis + 2) % 3
    sh, ch = jnp.sin(0.5 * angle), jnp.cos(0.5 * angle)
    cm1, s = -2.0 * sh * sh, 2.0 * sh * ch
    Lj, Lk = L[..., j], L[..., k]
    out = [None, None, None]
    out[i] = L[..., i]
    out[j] = Lj + (cm1 * Lj - s * Lk)
    out[k] = Lk + (s * Lj + cm1 * Lk)
    return jnp.stack(jnp.broadcast_arrays(*out), axis=-1)


def axis_flow(L: Array, axis: int, dt: Array, inertia: Array) -> Array:
    """Exact time-dt flow of H_i = L_i^2 / (2 I_i), i = axis, under L' = L x grad H_i.

    grad H_i = (L_i / I_i) e_i, so with a = L_i / I_i: L_j' = a L_k, L_k' = -a L_j: a rotation about e_i by
    angle -a t. Properties: exact; reversible (flow(-dt) is its inverse); preserves |L|^2 and L_i.
    Arguments: L (..., 3); axis static int; dt scalar (may be traced); inertia (3,).
    Returns: (..., 3).
    """
    inertia = jnp.asarray(inertia)
    return axis_rotation(L, axis, -(dt * L[..., axis]) / inertia[..., axis])


def rigid_body_strang(L: Array, dt: Array, inertia: Array) -> Array:
    """One step of the symmetric splitting R1(dt/2) R2(dt/2) R3(dt) R2(dt/2) R1(dt/2).

    Properties: order 2; symmetric (step(-dt) o step(dt) = id up to roundoff); Poisson map; preserves
    |L|^2 to roundoff (each sub-flow is a rotation); energy error bounded (no secular drift); explicit,
    5 rotations per step.
    Arguments: L: (..., 3); dt: scalar (may be traced); inertia: (3,) principal moments I_i > 0.
    Returns: L after one step, (..., 3).
    Reference: McLachlan (1993); Dullweber, Leimkuhler & McLachlan (1997).
    """
    h = 0.5 * dt
    L = axis_flow(L, 0, h, inertia)
    L = axis_flow(L, 1, h, inertia)
    L = axis_flow(L, 2, dt, inertia)
    L = axis_flow(L, 1, h, inertia)
    return axis_flow(L, 0, h, inertia)


def rigid_body_order4(L: Array, dt: Array, inertia: Array) -> Array:
    """One step of Yoshida's triple jump S(w1 dt) S(w0 dt) S(w1 dt) of the Strang step S.

    w1 = 1 / (2 - 2^(1/3)), w0 = -2^(1/3) / (2 - 2^(1/3)).
    Properties: order 4; symmetric; Poisson map; preserves |L|^2 to roundoff; 15 rotations per step.
    Arguments: L: (..., 3); dt: scalar (may be traced); inertia: (3,).
    Returns: (..., 3).
    Reference: Yoshida (1990); Hairer, Lubich & Wanner, "Geometric Numerical Integration" (2006), sec. II.4.
    """
    L = rigid_body_strang(L, YOSHIDA_W1 * dt, inertia)
    L = rigid_body_strang(L, YOSHIDA_W0 * dt, inertia)
    return rigid_body_strang(L, YOSHIDA_W1 * dt, inertia)


FIX = (
    "The explicit rigid-body splitting (method='rigid_body' / 'rigid_body4') needs H(L) = sum_i L_i^2 / (2 I_i) "
    '(+ a constant) with every I_i > 0; for any other Hamiltonian use method="implicit_midpoint".'
)


def _concrete(consts) -> list:
    return [None if isinstance(c, jax.core.Tracer) else np.asarray(c) for c in consts]


def check_rigid_body_form(closed, consts=None) -> None:
    """Prove from H's jaxpr (``closed``, a ClosedJaxpr of L (3,) -> scalar) that H = sum_i c_i L_i^2 + const.

    Structural, so it holds for traced parameters too: the jaxpr is evaluated on monomial supports
    (``tpjax.structures.forms``); only the monomials 1 and L_i^2 may appear. ``consts``: H's constants
    (default: ``closed.consts``), concrete arrays (their zeros are used) or tracers.
    Raises: ValueError naming `H` and method='rigid_body', with the fix.
    """
    from ..structures.forms import polynomial_support

    consts = _concrete(closed.consts if consts is None else consts)
    monos = polynomial_support(closed.jaxpr, consts, (3,))
    if monos is None:
        raise ValueError(f"`H` is not a free rigid body Hamiltonian: it is not a polynomial of degree <= 2 in L "
                         f"(as far as its jaxpr shows). {FIX}")  # fmt: skip
    bad = sorted(m for m in monos if sum(m) == 1 or (sum(m) == 2 and max(m) == 1))
    if bad:
        names = ["*".join(f"L{k}" * e for k, e in enumerate(m) if e) for m in bad]
        raise ValueError(f"`H` is not a free rigid body Hamiltonian: it has the term(s) {names} besides the "
                         f"squares L_i^2. {FIX}")  # fmt: skip


def inertia_from_energy(energy, dtype, concrete: bool = True) -> Array:
    """I_i = 1 / (d^2 H / dL_i^2) for an H already proven of the form sum_i L_i^2 / (2 I_i) + const.

    Concrete: raises unless every I_i > 0. Traced (e.g. vmapped or differentiated moments): a non-positive
    moment becomes NaN, so the run is NaN (reported by ``integrate(..., check=True)``) instead of wrong.
    """
    from .._compat import eval_context

    hessian = jax.jit(jax.hessian(energy))  # one compile, not op-by-op dispatch
    h = None
    if concrete:  # H's constants are concrete: get concrete moments, also inside an outer jit
        try:
            with eval_context():
                h = jnp.diagonal(hessian(jnp.zeros(3, dtype)))
        except AssertionError:  # inside shard_map jax cannot evaluate eagerly: use the traced moments
            h = None
    if h is None:
        h = jnp.diagonal(hessian(jnp.zeros(3, dtype)))
    if isinstance(h, jax.core.Tracer):  # traced moments: a non-positive one becomes NaN
        return jnp.where(h > 0, 1.0 / jnp.where(h > 0, h, 1.0), jnp.nan)
    hn = np.asarray(h, dtype=np.float64)
    if not (np.all(np.isfinite(hn)) and np.all(hn > 0)):
        raise ValueError(f"`H` is not a free rigid body Hamiltonian with positive moments: d^2H/dL_i^2 = "
                         f"{hn.tolist()}, so I = {(1 / hn).tolist()}. {FIX}")  # fmt: skip
    return 1.0 / h


def inertia_from_hamiltonian(H, dtype=None) -> Array:
    """Recover the principal moments I from a user Hamiltonian H(L) = sum_i L_i^2 / (2 I_i) (+ const).

    H's form is proven from its jaxpr (``check_rigid_body_form``), so the check holds when H closes over
    traced values (jit, grad, vmap) too; then I_i = 1 / (d^2 H / dL_i^2), differentiable in H's parameters.
    Arguments: H: (3,) -> scalar; dtype: evaluation dtype (default: jnp.zeros(3).dtype).
    Returns: inertia, shape (3,) (NaN entries for non-positive traced moments).
    Raises: ValueError naming `H` when it is not a free rigid body Hamiltonian.
    """
    dtype = jnp.zeros(3).dtype if dtype is None else jnp.dtype(dtype)
    closed = jax.make_jaxpr(lambda L: H(L))(jnp.zeros(3, dtype))
    if tuple(closed.out_avals[0].shape) != ():
        raise ValueError(f"`H` must map L of shape (3,) to a scalar; it returns shape {closed.out_avals[0].shape}.")
    check_rigid_body_form(closed)
    return inertia_from_energy(H, dtype, not any(isinstance(c, jax.core.Tracer) for c in closed.consts))
