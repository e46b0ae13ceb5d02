"""Eager calls reuse compiled runs: a cache of ``jax.jit``-ed runners.

Without it an eager ``integrate`` traces H, builds and optimises the TP-IR program and compiles a new XLA
loop on every call (56-300 ms, against 0.015 ms for the same call jitted). With it the second and later
eager calls with an unchanged H, the same arguments and shapes cost about one jitted call.

A cached runner is never stale. Its key is everything the compiled run depends on besides the operands
(state and dt, whose shapes and dtypes ``jax.jit``'s own cache handles): the static arguments, the x64
flag and the default backend, and H itself, in one of two tiers:

1. a *fingerprint* of H (``fingerprint``): its code, defaults and closure cells, and the module globals its
   code names, followed recursively through functions, partials, methods, containers; numbers by value,
   numpy arrays by value (they are mutable), jax arrays by identity (immutable; the entry keeps them
   alive, so an id is never reused). Rebinding a captured variable or a global, or writing into a numpy
   array, changes the key. The runner then calls H itself, so a hit costs no trace at all.
2. when H reaches anything the fingerprint does not know (an object with attributes, a jitted or
   custom_jvp function...): H's jaxpr at the call's shapes, traced on every call, keyed by its text plus
   H's identity (a weak reference), with H's array constants passed as runner operands (read at each call;
   small ones, <= SMALL_CONST entries, also keyed by value so value checks such as positive moments still
   raise eagerly).

The checks that need concrete values run on every call: state and dt validity before the run, and after
it the method's outside-jit check (implicit midpoint's ConvergenceError). A structure given as a function
J(z) is not cached. Anything that cannot be keyed (tracers: inside jit/vmap/grad the user's transformation
compiles; unhashable arguments) takes the uncached path, which is always correct.
"""

from __future__ import annotations

import collections
import functools
import math
import types
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from . import _validate as check
from .structures import Poisson, resolve

#: tier 2: H's constants with at most this many entries are also keyed by value.
SMALL_CONST = 64
#: numpy arrays up to this many bytes are fingerprinted by value; larger ones send H to tier 2.
FINGERPRINT_BYTES = 1 << 20
MAX_ENTRIES = 128
MAX_DEPTH = 6

MISS = object()
_entries: collections.OrderedDict = collections.OrderedDict()
stats = collections.Counter()
_ATOMIC = frozenset((int, float, complex, bool, str, bytes, type(None), type(Ellipsis)))


def clear() -> None:
    _entries.clear()
    stats.clear()


class _Unknown(Exception):
    """H reaches an object the fingerprint cannot vouch for."""


def _names(code) -> set:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def _fp(obj, keep: list, depth: int):
    kind = type(obj)
    if kind in _ATOMIC:
        return (kind.__name__, obj)
    if kind is types.ModuleType:
        return ("module", obj.__name__)
    if kind is types.FunctionType:
        if depth > MAX_DEPTH:
            raise _Unknown
        keep.append(obj.__code__)
        cells = tuple(_fp(c.cell_contents, keep, depth + 1) if _filled(c) else ("empty",)
                      for c in obj.__closure__ or ())  # fmt: skip
        g = obj.__globals__
        glob = tuple((n, _fp(g[n], keep, depth + 1)) for n in _code_names(obj.__code__) if n in g and g[n] is not obj)
        return ("fn", id(obj.__code__), _fp(obj.__defaults__, keep, depth + 1),
                _fp(obj.__kwdefaults__, keep, depth + 1), cells, glob)  # fmt: skip
    if isinstance(obj, jax.core.Tracer):
        raise _Unknown
    if isinstance(obj, jax.Array):
        keep.append(obj)
        return ("jax", id(obj))
    if isinstance(obj, np.ndarray):
        if obj.nbytes > FINGERPRINT_BYTES or obj.dtype == object:
            raise _Unknown
        return ("np", obj.shape, obj.dtype.str, obj.tobytes())
    if isinstance(obj, np.generic):
        return ("npg", obj.dtype.str, obj.item())
    if isinstance(obj, types.BuiltinFunctionType | type | np.ufunc | types.CodeType):
        keep.append(obj)
        return ("id", id(obj))
    if depth > MAX_DEPTH:
        raise _Unknown
    rec = functools.partial(_fp, keep=keep, depth=depth + 1)
    if isinstance(obj, tuple | list | frozenset | set):
        items = sorted(map(rec, obj), key=repr) if isinstance(obj, frozenset | set) else map(rec, obj)
        return (kind.__name__, tuple(items))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted(((rec(k), rec(v)) for k, v in obj.items()), key=repr)))
    if isinstance(obj, functools.partial):
        return ("partial", rec(obj.func), rec(obj.args), rec(obj.keywords))
    if isinstance(obj, types.MethodType):
        return ("method", rec(obj.__func__), rec(obj.__self__))
    raise _Unknown


@functools.lru_cache(maxsize=1024)
def _code_names(code) -> tuple:
    """The global names a code object (and the code of its nested functions) may read."""
    return tuple(sorted(_names(code)))


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def fingerprint(H, keep: list):
    """A hashable key for everything H's result can depend on, or None when H reaches an unknown object."""
    try:
        key = _fp(H, keep, 0)
        hash(key)
    except (_Unknown, TypeError, RecursionError):
        return None
    return key


def cached_call(fn, compile_fn, H, state, dt, kwargs: dict):
    """``fn(H, state, dt=dt, **kwargs)`` through a cached jitted runner, or MISS when the call cannot be
    cached (then the caller runs its ordinary path). ``fn`` is ``tpjax.integrate`` or ``tpjax.trajectory``,
    ``compile_fn`` is ``tpjax.compile`` (run once per entry, eagerly, for its errors and the post-check)."""
    st = kwargs.get("structure", "canonical")
    if isinstance(st, Poisson) or not isinstance(st, str) and not hasattr(st, "check_state"):
        return MISS
    leaves = jax.tree.leaves(state)
    if not leaves or any(isinstance(x, jax.core.Tracer) for x in leaves) or isinstance(dt, jax.core.Tracer):
        return MISS
    try:
        static = (fn.__name__, tuple(kwargs.items()), jax.config.jax_enable_x64, jax.default_backend())
        hash(static)
        dtype = leaves[0].dtype
    except Exception:  # noqa: BLE001 (anything unusual: the ordinary path validates and raises properly)
        return MISS
    keep = []
    fp = fingerprint(H, keep)
    consts = ()
    if fp is not None:
        key, build = ("fp", static, fp), lambda: _direct_runner(fn, H, kwargs)
    else:
        try:
            parts = resolve(st).check_state(state)
            Hp = resolve(st).wrap_hamiltonian(H, state)
            closed = jax.make_jaxpr(lambda *xs: Hp(*xs))(*[jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in parts])
            ref = weakref.ref(H)
        except Exception:  # noqa: BLE001
            return MISS
        if any(isinstance(c, jax.core.Tracer) for c in closed.consts):
            return MISS
        consts = tuple(closed.consts)
        key = ("jaxpr", static, id(H), str(closed.jaxpr), tuple(_const_key(c) for c in consts))
        build = lambda: _jaxpr_runner(fn, closed, kwargs, ref)  # noqa: E731
    if not (type(dt) is float and math.isfinite(dt) and abs(dt) <= _max(dtype)):  # checks the runner cannot make
        check.dt(dt, dtype, convert=False)
    entry = _entries.get(key)
    if entry is None or (entry.ref is not None and entry.ref() is not H):
        stats["miss"] += 1
        check.finite_state(resolve(st).check_state(state), resolve(st).parts)
        entry = _Entry(*build(), _post_check(compile_fn, H, state, kwargs), keep)
        _entries[key] = entry
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    else:
        stats["hit"] += 1
        _entries.move_to_end(key)
    with check.raising_non_finite():
        out, finite = entry.runner(state, dt, *consts)
        if not np.asarray(finite):  # the same ValueError as the uncached path, naming the entry
            st = resolve(st)
            check.finite_state(st.check_state(state), st.parts)
    entry.post(out, dt)
    return out


@functools.lru_cache(maxsize=16)
def _max(dtype) -> float:
    return float(jnp.finfo(dtype).max) if jnp.issubdtype(dtype, jnp.floating) else -1.0


_Entry = collections.namedtuple("_Entry", "runner ref post keep")


def _const_key(c):
    a = np.asarray(c)
    return (a.shape, a.dtype.str, a.tobytes() if a.size <= SMALL_CONST else None)


def _finite(state):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)]))


def _direct_runner(fn, H, kwargs):
    return jax.jit(lambda state, dt: (fn(H, state, dt=dt, **kwargs), _finite(state))), None


def _jaxpr_runner(fn, closed, kwargs, ref):
    jaxpr = closed.jaxpr

    def run(state, dt, *consts):
        out = fn(lambda *xs: jax.core.eval_jaxpr(jaxpr, consts, *xs)[0], state, dt=dt, **kwargs)
        return out, _finite(state)

    return jax.jit(run), ref


def _post_check(compile_fn, H, state, kwargs):
    """The method's outside-jit check on the final state. Compiling once eagerly with the concrete H also
    raises every compile-time error of the call (e.g. non-positive rigid-body moments)."""
    comp = compile_fn(H, state, **{k: kwargs[k] for k in ("method", "structure", "precision") if k in kwargs})
    stepper_check, st = comp.method.stepper(comp).check, comp.structure
    if getattr(stepper_check, "__name__", "") == "<lambda>":  # the Stepper default: nothing to check
        return lambda out, dt: None

    def post(out, dt):
        final = out
        if hasattr(out, "energies"):  # a Solution: its last saved state
            final = jax.tree.map(lambda a: a[-1], out.states)
        stepper_check(tuple(st.check_state(final)), dt)

    return post
