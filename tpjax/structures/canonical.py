"""The canonical structure: state (q, p), J = [[0, I], [-I, 0]]; q and p may be matching pytrees."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from .base import AbstractStructure, poisson_j, state_array, state_pair


@dataclasses.dataclass(frozen=True)
class Canonical(AbstractStructure):
    """Canonical Hamiltonian mechanics: q' = +dH/dp, p' = -dH/dq (POISSON_J types PASS and NEGATE).

    State: ``(q, p)``, two floating arrays of one shape and dtype, or two pytrees of one structure
    (dicts, NamedTuples, nested tuples: e.g. several species of different shapes) whose leaves match
    pairwise in shape and share one dtype. A pytree state is raveled to one flat vector for q and one for
    p (leaves in ``jax.tree`` order), H is traced on the flat vectors (it receives the unraveled pytrees),
    and results come back in the pytree's structure; the TP-IR listing and the kernels see the flat
    vectors. Every method applies; the kick/drift splittings need a separable H = T(p) + V(q).
    Default method: leapfrog.
    """

    name: str = "canonical"
    parts: tuple[str, ...] = ("q", "p")
    canonical: bool = True
    default_method: str = "leapfrog"

    def check_state(self, state) -> tuple:
        hint = "pass tpjax.integrate(H, (q, p), ...) or choose structure='so3' for a single vector L"
        layout = _layout(state)
        if layout is None:
            return state_pair(state, ("q", "p"), self.name, hint)
        return tuple(_ravel(x) for x in state)

    def wrap_hamiltonian(self, H, state):
        layout = _layout(state)
        if layout is None:
            return H
        return lambda q, p: H(_unravel(q, layout), _unravel(p, layout))

    def pack(self, parts, state):
        layout = _layout(state)
        if layout is None:
            return super().pack(parts, state)
        return super().pack(tuple(_unravel(x, layout) for x in parts), state)

    def emit_flow(self, b, tr, grads, regs):
        q, p = regs
        return [poisson_j(b, grads[1], q, "PASS", comment="qdot = +dH/dp"),
                poisson_j(b, grads[0], p, "NEGATE", comment="pdot = -dH/dq")]  # fmt: skip


def _is_array(x) -> bool:
    return hasattr(x, "dtype") or (isinstance(x, int | float) and not isinstance(x, bool))


def _layout(state):
    """None for a (q, p) pair of arrays; else (treedef, leaf shapes) of the matching q and p pytrees."""
    if not isinstance(state, tuple | list) or len(state) != 2 or all(_is_array(x) for x in state):
        return None
    q, p = state
    tq, tp = jax.tree.structure(q), jax.tree.structure(p)
    if tq != tp:
        raise ValueError(f"state: q and p must be pytrees of the same structure, got {tq} and {tp}")
    ql = [state_array(x, f"q leaf {k}") for k, x in enumerate(jax.tree.leaves(q))]
    pl = [state_array(x, f"p leaf {k}") for k, x in enumerate(jax.tree.leaves(p))]
    if not ql:
        raise ValueError("state: q and p are empty pytrees; pass at least one array each")
    for k, (a, b) in enumerate(zip(ql, pl, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"state: q and p leaf {k} have shapes {a.shape} and {b.shape}; they must match")
    dtypes = {jnp.dtype(x.dtype) for x in ql + pl}
    if len(dtypes) > 1:
        raise ValueError(f"state: all leaves of q and p must share one dtype, got {sorted(d.name for d in dtypes)}; "
                         "cast them, e.g. jax.tree.map(lambda x: x.astype(jnp.float32), q)")  # fmt: skip
    return tq, tuple(tuple(x.shape) for x in ql)


def _ravel(tree):
    leaves = [state_array(x, "q/p leaf") for x in jax.tree.leaves(tree)]
    return jnp.concatenate([jnp.reshape(x, (-1,)) for x in leaves])


def _unravel(flat, layout):
    """The pytree of ``flat`` (..., n): leaf k is flat[..., o_k : o_k + size_k] reshaped, leading axes kept."""
    treedef, shapes = layout
    lead, out, o = flat.shape[:-1], [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(jnp.reshape(flat[..., o : o + n], lead + s))
        o += n
    return jax.tree.unflatten(treedef, out)
