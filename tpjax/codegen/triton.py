"""Loading and launching the generated Triton kernel (the source itself comes from ``triton_source``).

``kernel(comp)`` imports the generated source through the private on-disk cache (``kernel_cache``) and
caches it by text; ``fused_integrate`` launches it through ``tpjax._compat.triton_call``;
``flops_per_step`` counts the arithmetic the kernel executes; ``register`` adds the generated code to
``TPJAX_DEBUG=3`` output.
"""

from __future__ import annotations

import functools

import numpy as np

from ..ir.node import Program
from ..ir.ops import Op
from . import kernel_cache
from .triton_source import _OPAQUE_MSG as _OPAQUE_MSG
from .triton_source import BLOCK as BLOCK
from .triton_source import KERNEL_NAME as KERNEL_NAME
from .triton_source import NUM_WARPS as NUM_WARPS
from .triton_source import _Emitter as _Emitter
from .triton_source import generate as generate
from .triton_source import generate_program as generate_program

_MODULES: dict[str, object] = {}  # generated source -> imported module


def load_kernel(source: str, name: str = KERNEL_NAME):
    """Import ``source`` through the private kernel cache (``kernel_cache.load_module``: a real file, since
    Triton's JIT reads the function's source; verified against its hash before it is executed) and return
    its kernel ``name``; cached by the source text."""
    mod = _MODULES.get(source)
    if mod is None:
        mod = _MODULES[source] = kernel_cache.load_module(source)
    return getattr(mod, name)


def kernel(comp, save: bool = False):
    """The ``triton.JITFunction`` for ``comp`` (generated and imported once per program text)."""
    return load_kernel(generate(comp, save=save))


@functools.lru_cache(maxsize=64)
def compile_error(src: str, capability: int = 90) -> str | None:
    """None when Triton compiles the kernel of ``src`` for CUDA compute ``capability`` (no GPU needed), else
    the compiler's message: the executor choice tries it for tile-form kernels (``triton_tile``), whose
    tensor shapes meet Triton passes that the unrolled form never does, so that a kernel Triton cannot build
    runs the XLA loop instead of failing the user's call."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kern = load_kernel(src)
    ptr = {"f32": "*fp32", "f64": "*fp64"}["f64" if "dtype=f64" in src.splitlines()[1] else "f32"]
    sig = {
        a: ptr if a.endswith("_ptr") else "constexpr" if a in ("BLOCK", "FAST_MATH") else "i32" for a in kern.arg_names
    }
    block, num_warps, _ = launch_constants(src)
    try:
        triton.compile(ASTSource(kern, signature=sig, constexprs={"BLOCK": block, "FAST_MATH": False}),
                       target=GPUTarget("cuda", capability, 32), options={"num_warps": num_warps})  # fmt: skip
    except Exception as e:  # Triton reports pass failures as RuntimeError / CompilationError
        return f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}"
    return None


def launch_constants(src: str, block: int | None = None, num_warps: int | None = None):
    """(systems per program, warps, constant table or None) for the kernel of ``src``: the tile form's
    module records its own (``triton_tile_kernel``); the unrolled kernel uses BLOCK and NUM_WARPS. Explicit
    ``block`` / ``num_warps`` win."""
    mod = _MODULES.get(src) or kernel_cache.load_module(src)
    _MODULES[src] = mod
    block = getattr(mod, "TPJAX_BLOCK", BLOCK) if block is None else block
    num_warps = getattr(mod, "TPJAX_NUM_WARPS", NUM_WARPS) if num_warps is None else num_warps
    return block, num_warps, getattr(mod, "TPJAX_TABLE", None)


def fused_integrate(comp, q, p, dt, steps: int, *, fast_math: bool = False, block: int | None = None,
                    num_warps: int | None = None, consts=None, save_every: int | None = None,
                    form: str = "auto"):  # fmt: skip
    """Integrate an ensemble with one fused Triton kernel: ``steps`` steps of ``comp``'s method.

    Args:
      comp: ``tpjax.compile(H, (q0, p0), method=...)`` for ONE system (q0, p0 of any shape with at
        most ``MAX_COMPONENTS`` elements).
      q, p: arrays of one shape ``(..., *system_shape)`` (the leading dims, flattened, are the N systems;
        a system's components lie contiguously, row-major) and comp's dtype.
      dt: step size (python float or scalar array; a run-time operand).
      steps: number of steps (python int; a run-time kernel argument, not a recompile).
      block, num_warps: systems and warps per program (default: BLOCK and NUM_WARPS, or the tile-form
        kernel's own ``TPJAX_BLOCK`` and ``TPJAX_NUM_WARPS``).
      fast_math: float32 only: approximate sin/cos/exp PTX instructions.
      consts: values of H's parameters (default: those captured when ``comp`` was compiled); arrays are
        passed flat and read by the kernel element by element.
      save_every: None, or a positive int dividing ``steps``: also return the state after every
        ``save_every`` steps (run-time kernel arguments; the saving kernel is one more compile per comp).
      form: the kernel form (``triton_source.FORMS``: "auto", "unrolled" or "tile").
    Returns: (q, p) after ``steps`` steps, shaped like the inputs; with ``save_every``,
    (q, p, Q, P) where Q, P have shape (steps // save_every, *q.shape) and row k is the state after
    (k + 1) * save_every steps (so Q[-1] == q). Needs a CUDA GPU to run (lowers anywhere jax-triton
    imports). No vmap/grad rule: use ``tpjax.primitives.fused.fused_integrate`` for those.
    """
    import jax
    import jax.numpy as jnp

    from .. import _compat

    save = save_every is not None
    src = generate(comp, save=save, form=form)
    kern = load_kernel(src)
    block, num_warps, table = launch_constants(src, block, num_warps)
    want = {"f32": "float32", "f64": "float64"}[comp.step.instrs[0].dtype]
    q, p = jnp.asarray(q), jnp.asarray(p)
    if q.shape != p.shape:
        raise ValueError(f"fused_integrate: q has shape {q.shape}, p has {p.shape}")
    if str(q.dtype) != want or str(p.dtype) != want:
        raise ValueError(f"fused_integrate: q, p must be {want} (the dtype comp was compiled for)")
    if fast_math and want != "float32":
        raise ValueError("fused_integrate: fast_math is float32 only")
    shape = q.shape
    sys_shape = system_shape(comp)
    k = len(sys_shape)
    if q.ndim < k or tuple(q.shape[q.ndim - k :]) != sys_shape:
        raise ValueError(
            f"fused_integrate: q, p of shape {q.shape} must end with the per-system shape {sys_shape} "
            "that comp was compiled for (leading dims are the ensemble)"
        )
    n = int(np.prod(shape[: q.ndim - k], dtype=np.int64))  # systems
    size = n * int(np.prod(sys_shape, dtype=np.int64))  # elements: (N, d) row-major
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"fused_integrate: steps must be >= 0, got {steps}")
    n_saves = 0
    if save:
        save_every = _check_save_every(save_every, steps)
        n_saves = steps // save_every
    if n == 0 or steps == 0:
        if not save:
            return q, p
        final = [jnp.broadcast_to(x[None], (n_saves, *shape)) for x in (q, p)]  # empty when steps == 0
        return q, p, *final
    qf, pf = q.reshape(size), p.reshape(size)
    dtv = jnp.asarray(dt, q.dtype).reshape(())
    cs = [jnp.asarray(c, q.dtype).reshape(-1) for c in (comp.consts if consts is None else consts)]  # flat
    if table is not None:
        cs.append(jnp.asarray(np.asarray(table, np.float64), q.dtype))  # the tile form's constant table
    grid = lambda meta: ((n + meta["BLOCK"] - 1) // meta["BLOCK"],)
    if not save:
        outq, outp = _compat.triton_call(
            qf, pf, dtv, *cs, n, steps, kernel=kern, out_shape=(qf, pf), grid=grid,
            num_warps=num_warps, BLOCK=block, FAST_MATH=bool(fast_math),
        )  # fmt: skip
        return outq.reshape(shape), outp.reshape(shape)
    rows = jax.ShapeDtypeStruct((n_saves, size), qf.dtype)
    outq, outp, sq, sp = _compat.triton_call(
        qf, pf, dtv, *cs, n, n_saves, save_every, kernel=kern, out_shape=(qf, pf, rows, rows), grid=grid,
        num_warps=num_warps, BLOCK=block, FAST_MATH=bool(fast_math),
    )  # fmt: skip
    return outq.reshape(shape), outp.reshape(shape), sq.reshape(n_saves, *shape), sp.reshape(n_saves, *shape)


def system_shape(comp) -> tuple[int, ...]:
    """The per-system state shape ``comp`` was compiled for: () or (d,)."""
    traced = getattr(comp, "traced", None)
    return tuple(traced.avals[0].shape) if traced is not None else ()


def _check_save_every(save_every, steps: int) -> int:
    if isinstance(save_every, bool) or not isinstance(save_every, int | np.integer) or save_every < 1:
        raise ValueError(f"fused_integrate: save_every must be a positive int, got {save_every!r}")
    if steps % int(save_every):
        raise ValueError(f"fused_integrate: save_every={save_every} must divide steps={steps}")
    return int(save_every)


def flops_per_step(step: Program) -> dict[str, int]:
    """Arithmetic per system per step as the kernel executes it (after constant folding): FMA = 2 flops,
    ELEM = 1 (sin/cos/exp count as one SFU op, approximately), ACC_GRAD = 1, SYMP_STEP = 2 (one fma);
    per component of a (d,) result, and d - 1 adds per in-register SUM."""
    em = _Emitter(step.instrs[0].dtype, "", _OPAQUE_MSG)
    counts = {"fma": 0, "elem": 0, "other": 0}
    shapes: dict[str, tuple[int, ...]] = {}
    for i in step.instrs:
        if i.op is Op.LOAD:
            shapes[i.dst[0]] = i.shape
        if i.op in (Op.LOAD, Op.STORE):
            continue
        shapes[i.dst[0]] = i.shape
        c = em.fold(i)
        if c is not None:
            em.consts[i.dst[0]] = c
            continue
        em.consts.pop(i.dst[0], None)
        w = int(np.prod(i.shape, dtype=np.int64))  # components of a (d,) result
        if i.op in (Op.FMA, Op.SYMP_STEP):
            counts["fma"] += w
        elif i.op is Op.ELEM and i.attr("func") not in ("broadcast", "reshape", "neg"):
            counts["elem"] += w
        elif i.op is Op.ACC_GRAD:
            counts["other"] += w
        elif i.op is Op.SUM and isinstance(i.args[0], str):  # in-register reduction: d - 1 adds
            counts["other"] += max(int(np.prod(shapes.get(i.args[0], ()), dtype=np.int64)) // w - 1, 0)
    counts["flops"] = 2 * counts["fma"] + counts["elem"] + counts["other"]
    return counts


# ---- TPJAX_DEBUG=3 hook -------------------------------------------------------------------------------
def _hook(prog: Program) -> str | None:
    try:
        return generate_program(prog)
    except NotImplementedError as e:
        return f"# no fused Triton kernel: {e}"


def register() -> None:
    """Add the generated-code hook to ``tpjax.passes.GENERATED_CODE_HOOKS`` when that list exists."""
    from .. import passes

    hooks = getattr(passes, "GENERATED_CODE_HOOKS", None)
    if isinstance(hooks, list) and not any(getattr(h, "__name__", "") == "tpjax_triton_hook" for h in hooks):
        hook = lambda prog: _hook(prog)
        hook.__name__ = "tpjax_triton_hook"
        hooks.append(hook)


register()
