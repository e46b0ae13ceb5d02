"""Fused kernels on a sharded ensemble: each device runs the kernel on its own slice, with no communication.

A fused primitive lowers on CUDA to one Triton custom call. XLA's partitioner cannot split a custom call it
does not know, so given a sharded ensemble it would gather the whole state onto every device and run the
full kernel there. ``per_shard`` prevents that: when the ensemble (axis 0 of the fused primitive's batched
operands) is split over mesh axes, it binds the primitive inside ``jax.shard_map`` over those axes, so each
device's kernel sees only its members (and the pre-flight memory check sees one device's share).

Which axes split the ensemble:
- Explicit mesh axes (``jax.make_mesh``'s default): exactly the axes in the ensemble operand's type, e.g.
  ``P("ens")``. Nothing moves.
- Auto mesh axes: the types say nothing, so the ensemble is split over every Auto axis of the context mesh
  whose sizes multiply to a divisor of the ensemble size (XLA moves data only if the input was laid out
  differently; the result comes back split the same way).
- Manual axes (inside the user's ``jax.shard_map``): the primitive already sees one shard; nothing to do.
Without a mesh (or a one-device one) the primitive is bound as it is.
"""

from __future__ import annotations

import math

import jax
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P


def _names(entry) -> tuple:
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, tuple | list) else (entry,)


def split_axes(x) -> tuple[str, ...]:
    """The mesh axes that split axis 0 of the ensemble operand ``x`` (empty: run it whole)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or x.ndim == 0:
        return ()
    kinds = dict(zip(mesh.axis_names, mesh.axis_types, strict=True))
    spec = jax.typeof(x).sharding.spec
    explicit = tuple(a for a in _names(spec[0] if len(spec) else None) if kinds.get(a) == AxisType.Explicit)
    if explicit:
        return explicit
    auto = tuple(a for a in mesh.axis_names if kinds[a] == AxisType.Auto)
    if not auto or math.prod(mesh.shape[a] for a in auto) == 1:
        return ()
    if x.shape[0] % math.prod(mesh.shape[a] for a in auto):
        return ()
    return auto


def _as(x, spec):
    """``x`` with the explicit sharding ``spec`` (a no-op if it has it; Auto-axes arrays pass unchanged)."""
    mesh = jax.sharding.get_abstract_mesh()
    if AxisType.Explicit not in mesh.axis_types or tuple(jax.typeof(x).sharding.spec) == tuple(spec):
        return x
    return jax.sharding.reshard(x, spec)


def per_shard(bind, ensemble: list, rest: list, save_axis1: tuple[bool, ...]) -> list:
    """``bind(*ensemble, *rest)`` with the ensemble split over the mesh axes that split it (see the module
    doc). ``ensemble``: operands whose axis 0 is the ensemble; ``rest``: operands every shard needs whole
    (dt, constants). ``save_axis1[i]`` says output i carries the ensemble at axis 1 (saved states)."""
    axes = ()
    for x in ensemble:
        axes = axes or split_axes(x)
    if not axes:
        return list(bind(*ensemble, *rest))
    lead = axes if len(axes) > 1 else axes[0]
    ens_specs = [P(lead, *(None,) * (x.ndim - 1)) for x in ensemble]
    rest_specs = [P(*(None,) * x.ndim) for x in rest]
    ensemble = [_as(x, s) for x, s in zip(ensemble, ens_specs, strict=True)]
    rest = [_as(x, s) for x, s in zip(rest, rest_specs, strict=True)]
    out_specs = tuple(P(None, lead) if s else P(lead) for s in save_axis1)
    f = jax.shard_map(lambda *xs: tuple(bind(*xs)), mesh=jax.sharding.get_abstract_mesh(),
                      in_specs=(*ens_specs, *rest_specs), out_specs=out_specs, axis_names=frozenset(axes))  # fmt: skip
    return list(f(*ensemble, *rest))
