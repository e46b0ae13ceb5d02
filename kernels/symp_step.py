"""SYMP_STEP: one explicit sub-step of a splitting method, ``s <- s + COEF * dt * f``.

``symp_step`` is the device function a generated kernel inlines; ``symp_step_kernel`` runs it alone over
flat buffers; ``symp_step_call`` launches that kernel through a ``jax_triton.triton_call``-like function.
``dt`` is always a run-time operand (a pointer), so a new step size never recompiles; ``COEF`` (the
method's stage coefficient, e.g. 0.5 for a leapfrog half-kick) is a compile-time constant.
"""

import triton
import triton.language as tl

#: default elements per program (4 warps x 32 lanes x 8 elements).
BLOCK = 1024


@triton.jit
def symp_step(s, f, dt, COEF: tl.constexpr):
    """Return ``s + (COEF * dt) * f`` on register values.

    Args:
      s, f: tensors of one shape and one dtype (float32 or float64): state and flow.
      dt: scalar tensor of the same dtype (loaded by the caller, never a constexpr).
      COEF: Python float. Triton materialises it in ``dt``'s dtype, so a float64 kernel keeps the full
        double value (e.g. Yoshida's 1/(2 - 2**(1/3))), a float32 kernel the correctly rounded float.
    Returns:
      A tensor like ``s``. ``COEF * dt`` is formed once per program; with fp-fusion on (the Triton and
      jax-triton default) the update compiles to one ``fma`` per element, i.e. a single rounding.
    """
    return s + (COEF * dt) * f


@triton.jit
def symp_step_kernel(s_ptr, f_ptr, dt_ptr, n, out_ptr, COEF: tl.constexpr, BLOCK: tl.constexpr):
    """``out[i] = s[i] + COEF * dt * f[i]`` for ``0 <= i < n``.

    Pointers: ``s_ptr``, ``f_ptr``, ``out_ptr`` -> flat contiguous buffers of ``n`` elements;
      ``dt_ptr`` -> one element (a shape-() or (1,) array). All four share one dtype, float32 or float64.
      ``out_ptr`` may equal ``s_ptr`` (in-place update): each element is read before it is written and
      programs touch disjoint ranges.
    n: int32 element count, n >= 1 and n < 2**31.
    Grid: ``(cdiv(n, BLOCK),)``; program p covers ``[p*BLOCK, (p+1)*BLOCK)``, loads and stores masked by
      ``offs < n`` so any n works.
    COEF: float constexpr (one compiled kernel per coefficient); BLOCK: power-of-two constexpr.
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    s = tl.load(s_ptr + offs, mask=mask)
    f = tl.load(f_ptr + offs, mask=mask)
    dt = tl.load(dt_ptr)
    tl.store(out_ptr + offs, symp_step(s, f, dt, COEF), mask=mask)


def symp_step_grid(n):
    """The grid function for ``n`` elements: jax-triton calls it with the constexpr metaparameters."""
    return lambda meta: (triton.cdiv(n, meta["BLOCK"]),)


def symp_step_call(call, s, f, dt, *, coef=1.0, block=BLOCK, **call_kw):
    """Launch ``symp_step_kernel``: returns ``s + coef * dt * f`` as a new array like ``s``.

    Args:
      call: ``tpjax._compat.triton_call`` (or jax-triton 0.3.1's ``triton_call``).
      s, f: arrays of one shape and dtype (float32 or float64), any shape (the kernel sees them flat).
      dt: array of shape () or (1,) with the same dtype: a run-time operand.
      coef: Python float stage coefficient (static); block: elements per program (power of two).
      **call_kw: passed to ``call``, e.g. ``input_output_aliases={0: 0}`` to update ``s`` in place,
        ``zeroed_outputs=(0,)``, ``num_warps=8``.
    Out shape: one output shaped and typed like ``s``.
    """
    check_float("s", s)
    for name, x in (("f", f), ("dt", dt)):
        if x.dtype != s.dtype:
            raise ValueError(f"symp_step_call: {name} has dtype {x.dtype}, expected s's dtype {s.dtype}.")
    if tuple(f.shape) != tuple(s.shape):
        raise ValueError(f"symp_step_call: f has shape {tuple(f.shape)}, expected s's {tuple(s.shape)}.")
    if numel(dt.shape) != 1:
        raise ValueError(f"symp_step_call: dt has shape {tuple(dt.shape)}, expected () or (1,).")
    n = numel(s.shape)
    return call(
        s, f, dt, n, kernel=symp_step_kernel, out_shape=s, grid=symp_step_grid(n),
        COEF=float(coef), BLOCK=block, **call_kw,
    )  # fmt: skip


def numel(shape):
    """Number of elements of ``shape`` (plain Python, no numpy)."""
    size = 1
    for d in shape:
        size *= int(d)
    return size


def check_float(name, x):
    """Raise unless ``x`` is a non-empty float32/float64 array (the dtypes every kernel here supports)."""
    if str(x.dtype) not in ("float32", "float64"):
        raise ValueError(f"{name} has dtype {x.dtype}; these kernels take float32 or float64.")
    if numel(x.shape) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); launch nothing instead.")
