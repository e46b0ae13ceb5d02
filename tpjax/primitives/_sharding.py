"""Sharding in types for tpjax's primitives: abstract evals that keep a mesh sharding and manual axes.

JAX (0.11) puts the sharding of an array into its type: under ``jax.set_mesh`` with Explicit axes a
``ShapedArray`` carries ``sharding`` (a mesh and a PartitionSpec), and inside ``jax.shard_map`` it carries
``manual_axis_type`` (the manual mesh axes the value varies over). A primitive whose abstract eval returns a
bare ``ShapedArray(shape, dtype)`` drops both: with Explicit axes jit then fails with "Resource axis ... is
not found in mesh: ()", and in shard_map a scan's carry changes type between iterations.

``typed(abstract, impl)`` wraps an op primitive's abstract eval: the shape and dtype (and every check) still
come from ``abstract``; when an operand carries a non-trivial sharding or manual axes, the sharding and
manual axes of the result come from JAX's own rules applied to ``impl`` (the reference implementation that
the primitive lowers to), so they agree with what runs. Without a mesh nothing is traced and nothing changes.

``like(aval, shape=..., lead=...)`` builds a result aval that copies ``aval``'s sharding (``lead`` extra
unsharded leading dims, e.g. a save axis) and varies over the manual axes of all ``operands``: the rule of
whole-run primitives (a fused ensemble run, the reversible tangent), whose outputs are laid out like a state.

Values, for the loops and the op wrappers: ``same_axes(*operands)`` casts a primitive's operands to vary
over the same manual axes (what jax.lax does for its own ops, so transposes return cotangents of their
operands' types); ``vary(tree, axes)`` and ``axes_of(*trees)`` make a loop carry started from a constant
vary like the state it meets; ``on_mesh(tree)`` puts mesh-less constants on an Explicit context mesh;
``cast_like(x, ref)`` gives a cotangent or zeros buffer its state's exact type, and ``shard_axis`` lays a
broadcast batch dim out like the batched operands'.
"""

from __future__ import annotations

import functools

import jax
from jax.core import ShapedArray
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def mesh_of(aval):
    """The (abstract) mesh in ``aval``'s type, or None: no mesh, or not an array type."""
    s = getattr(aval, "sharding", None)
    mesh = getattr(s, "mesh", None)
    return None if mesh is None or mesh.empty else mesh


def meshy(aval) -> bool:
    """Does ``aval`` name a mesh axis in its type (a sharded dim, or manual axes it varies over)?"""
    if mesh_of(aval) is None:
        return False
    mat = getattr(aval, "manual_axis_type", None)
    return (mat is not None and not mat.empty) or any(e is not None for e in aval.sharding.spec)


def varying(*avals) -> frozenset:
    """The union of the manual mesh axes the operands vary over (empty outside shard_map)."""
    out = frozenset()
    for a in avals:
        mat = getattr(a, "manual_axis_type", None)
        if mat is not None:
            out |= mat.varying
    return out


def _context_mesh(avals):
    meshes = [mesh_of(a) for a in avals if mesh_of(a) is not None]
    return meshes[0] if meshes else None


def like(aval, operands=(), *, shape=None, dtype=None, lead: int = 0) -> ShapedArray:
    """A result aval laid out like ``aval`` (its spec, after ``lead`` unsharded leading dims), of ``shape``
    and ``dtype`` (default: ``aval``'s), varying over the manual axes of ``aval`` and ``operands``."""
    shape = tuple(aval.shape if shape is None else shape)
    dtype = aval.dtype if dtype is None else dtype
    avals = (aval, *operands)
    mesh = _context_mesh(avals)
    if mesh is None:
        return ShapedArray(shape, dtype)
    own = tuple(aval.sharding.spec) if mesh_of(aval) is not None else ()
    spec = (None,) * lead + own + (None,) * len(shape)
    sharding = NamedSharding(mesh, P(*spec[: len(shape)]))
    mat = aval.manual_axis_type.update(varying=varying(*avals)) if varying(*avals) else aval.manual_axis_type
    return ShapedArray(shape, dtype, sharding=sharding, manual_axis_type=mat)


def typed(abstract, impl):
    """``abstract`` (shape, dtype, checks) with the sharding and manual axes JAX gives ``impl``'s result."""

    @functools.wraps(abstract)
    def rule(*avals, **params):
        out = abstract(*avals, **params)
        mesh = _context_mesh(avals)
        if mesh is None:
            return out
        if not any(meshy(a) for a in avals):  # a mesh, but no sharded dim (e.g. vmap over an Explicit axis)
            return out.update(sharding=NamedSharding(mesh, P(*(None,) * len(out.shape))))
        ref = jax.make_jaxpr(functools.partial(impl, **params))(*avals).out_avals[0]
        if tuple(ref.shape) != tuple(out.shape):
            raise AssertionError(f"tpjax: reference result {ref.str_short()} disagrees with {out.str_short()}")
        return out.update(sharding=ref.sharding, manual_axis_type=ref.manual_axis_type)

    return rule


# ---------------------------------------------------------------- loop carries inside shard_map
def axes_of(*trees) -> frozenset:
    """The manual mesh axes any array leaf of ``trees`` varies over (empty outside shard_map)."""
    return varying(*(jax.typeof(x) for x in jax.tree_util.tree_leaves(trees)))


def vary(tree, axes: frozenset):
    """``tree`` with every leaf made to vary over ``axes`` (``jax.lax.pcast(..., to="varying")``; a no-op
    when a leaf already does, and outside shard_map). Inside shard_map a scan carry must keep one type, so a
    carry started from a constant (zeros, an unbatched parameter, dt) is cast like the state it meets."""
    if not axes:
        return tree

    def one(x):
        extra = tuple(sorted(axes - axes_of(x)))
        return jax.lax.pcast(x, extra, to="varying") if extra else x

    return jax.tree_util.tree_map(one, tree)


def same_axes(*xs) -> list:
    """The array operands of one primitive cast to vary over the same manual axes (what jax.lax does for its
    own ops), so that every transpose returns cotangents of its operands' types. Python numbers pass."""
    arrays = [x for x in xs if not isinstance(x, bool | int | float)]
    axes = axes_of(arrays)
    return [x if isinstance(x, bool | int | float) else vary(x, axes) for x in xs]


def on_mesh(tree):
    """``tree`` with each leaf whose type has no mesh put on the context mesh, replicated, when that mesh has
    Explicit axes. Under ``vmap`` over an Explicit axis, a scan carry started from a mesh-less constant (the
    zeros of an accumulator, dt) fails in JAX 0.11 ("Resource axis ... not found in mesh: ()"); replicated on
    the mesh it batches like the values it meets."""
    from jax.sharding import AxisType

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or AxisType.Explicit not in mesh.axis_types:
        return tree

    def one(x):
        if mesh_of(jax.typeof(x)) is not None:
            return x
        return jax.sharding.reshard(x, P(*(None,) * jax.numpy.ndim(x)))

    return jax.tree_util.tree_map(one, tree)


def cast_like(x, ref, lead: int = 0):
    """The value ``x`` laid out like ``ref``: on an Explicit context mesh resharded to ``ref``'s spec (after
    ``lead`` unsharded leading dims, e.g. an anchor or save axis), and varying over ``ref``'s manual axes.
    A cotangent or a buffer built from zeros (or broadcast from an unbatched operand) gets its state's type,
    which ``jax.vjp`` and a scan carry require exactly. A no-op without a mesh."""
    from jax.sharding import AxisType

    mesh = jax.sharding.get_abstract_mesh()
    r = jax.typeof(ref)
    if not mesh.empty and AxisType.Explicit in mesh.axis_types:  # a mesh-less ref: replicated (on_mesh)
        own_ref = tuple(r.sharding.spec) if mesh_of(r) is not None else ()
        spec = ((None,) * lead + own_ref + (None,) * jax.numpy.ndim(x))[: jax.numpy.ndim(x)]
        own = tuple(jax.typeof(x).sharding.spec) if mesh_of(jax.typeof(x)) is not None else None
        if own != spec:
            x = jax.sharding.reshard(x, P(*spec))
    return vary(x, axes_of(ref))


def shard_axis(x, axis: int, entry):
    """``x`` with its dim ``axis`` split like a batch dim whose spec entry is ``entry`` (Explicit context
    mesh only; other dims keep theirs): an unbatched operand broadcast to the batch size by a batching rule
    is laid out like the batched ones, as ``jax.vmap`` requires of the operands it maps together."""
    from jax.sharding import AxisType

    mesh = jax.sharding.get_abstract_mesh()
    if entry is None or mesh.empty or AxisType.Explicit not in mesh.axis_types:
        return x
    a = jax.typeof(x)
    spec = list(a.sharding.spec) + [None] * (a.ndim - len(a.sharding.spec)) if mesh_of(a) else [None] * a.ndim
    if spec[axis] == entry:
        return x
    spec[axis] = entry
    return jax.sharding.reshard(x, P(*spec))


def batch_entry(x, d):
    """The spec entry (mesh axes, or None) of ``x``'s dim ``d`` in its type."""
    a = jax.typeof(x)
    if d is None or mesh_of(a) is None or d >= len(a.sharding.spec):
        return None
    return a.sharding.spec[d]
