"""Interpreter group "trig" (``python -m tests._interpret trig``): ``kernels/trig.py`` and the generated
kernel's libdevice redo, on the CPU under ``TRITON_INTERPRET=1``.

- ``functions-bits``: ``sin_bounded`` / ``cos_bounded`` in a kernel equal their numpy transcription
  (``tests._float_ops.sin_cos_bounded``) bit for bit on a grid (the interpreter's ``tl.fma`` is made a true fma,
  as the GPU's is; its own rounds twice).
- ``pendulum-{plain,save}-redo``: a float32 pendulum kernel whose blocks hold a lane far beyond TRIG_BOUND
  from the start, or one crossing it mid-run, equals the libdevice-only kernel (``bounded_trig=False``) bit for bit in
  those blocks (the block was run again with libdevice);
  ``pendulum-{plain,save}-in-range``: blocks that stayed in range agree with it to float32 roundoff.
- ``loop-{step,sweep}-{redo,in-range}``: the same for the gradient's fused-loop kernels
  (``codegen.triton_loop``: the anchored forward run and the reversible backward sweep).
"""

from __future__ import annotations

import numpy as np
import triton
import triton.language as tl

from kernels import trig
from kernels.trig import cos_bounded, sin_bounded
from tests._float_ops import fma32, fma64, sin_cos_bounded

BLOCK, STEPS, SAVE_EVERY, DT = 4, 12, 4, 0.05


@triton.jit
def _sincos_kernel(x_ptr, n, s_ptr, c_ptr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0)
    tl.store(s_ptr + offs, sin_bounded(x), mask=m)
    tl.store(c_ptr + offs, cos_bounded(x), mask=m)


def _patch_fma() -> None:
    from triton.runtime import interpreter

    def create_fma(self, x, y, z):
        f = fma32 if z.data.dtype == np.float32 else fma64
        return interpreter.TensorHandle(np.asarray(f(x.data, y.data, z.data), z.data.dtype), z.dtype.scalar)

    interpreter.InterpreterBuilder.create_fma = create_fma


def grid_points() -> np.ndarray:
    """float32 points over [-TRIG_BOUND, TRIG_BOUND]: random, log-spaced, the floats nearest k pi/2, zeros."""
    rng = np.random.default_rng(20261202)
    k = rng.integers(1, int(trig.TRIG_BOUND / (np.pi / 2)), 2000).astype(np.float64)
    near = (k * (np.pi / 2)).astype(np.float32)
    x = np.concatenate([
        rng.uniform(-trig.TRIG_BOUND, trig.TRIG_BOUND, 4000), np.exp(rng.uniform(-100, np.log(trig.TRIG_BOUND), 2000)),
        near, np.nextafter(near, np.float32(np.inf)), [0.0, np.pi / 4, trig.TRIG_BOUND, 1e-30],
    ]).astype(np.float32)  # fmt: skip
    return np.concatenate([x, -x])


def _functions(results: dict) -> None:
    from tests._interpret import NpArg

    x = grid_points()
    s, c = np.zeros_like(x), np.zeros_like(x)
    _sincos_kernel[(triton.cdiv(len(x), 256),)](NpArg(x), len(x), NpArg(s), NpArg(c), BLOCK=256)
    rs, rc = sin_cos_bounded(x, trig)
    wrong = np.sum(s.view(np.int32) != rs.view(np.int32)) + np.sum(c.view(np.int32) != rc.view(np.int32))
    results["functions-bits"] = [float(wrong), 0.0]


def _pendulum(results: dict) -> None:
    import jax.numpy as jnp

    import tpjax
    from tests._interpret import NpArg
    from tpjax.codegen import triton as TG
    from tpjax.codegen.triton_source import generate_program

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    comp = tpjax.compile(H, (jnp.float32(0.0), jnp.float32(0.0)), method="leapfrog")
    rng = np.random.default_rng(7)
    q, p = rng.uniform(-3, 3, 13).astype(np.float32), rng.uniform(-1, 1, 13).astype(np.float32)
    redo, in_range = _far_lanes(q, p)
    dtv, n, k = NpArg(np.array([DT], np.float32)), len(q), STEPS // SAVE_EVERY
    for save in (False, True):
        outs = []
        for bounded in (True, False):
            kern = TG.load_kernel(generate_program(comp.step, comp.prologue, save=save, bounded_trig=bounded))
            oq, op = np.zeros_like(q), np.zeros_like(p)
            if save:
                sq, sp = np.zeros((k, n), np.float32), np.zeros((k, n), np.float32)
                kern[(4,)](NpArg(q), NpArg(p), dtv, n, k, SAVE_EVERY, NpArg(oq), NpArg(op), NpArg(sq), NpArg(sp),
                           BLOCK=BLOCK, FAST_MATH=False)  # fmt: skip
                outs.append(np.concatenate([oq[None], op[None], sq, sp]))
            else:
                kern[(4,)](NpArg(q), NpArg(p), dtv, n, STEPS, NpArg(oq), NpArg(op), BLOCK=BLOCK, FAST_MATH=False)
                outs.append(np.stack([oq, op]))
        _compare(results, f"pendulum-{'save' if save else 'plain'}", *outs, redo, in_range)


def _far_lanes(q, p):
    """Lane 1 crosses far beyond TRIG_BOUND in the first drift, lane 6 starts there: blocks 0-3 and 4-7 are
    redone, 8-11 and 12 (masked) stay in range. Far enough that one Cody-Waite step is wrong (k above 2**24;
    kernels.trig stays accurate somewhat beyond TRIG_BOUND)."""
    q[1], p[1] = 1.0, 1.0e9
    q[6] = 3.0e9
    return np.arange(8), np.arange(8, 13)


def _compare(results: dict, name: str, got, ref, redo, in_range) -> None:
    bits = lambda a: a.view(np.int32)  # NaN == NaN here
    results[f"{name}-redo"] = [float(np.sum(bits(got[..., redo]) != bits(ref[..., redo]))), 0.0]
    rel = np.abs(got[..., in_range] - ref[..., in_range]) / np.maximum(np.abs(ref[..., in_range]), 1.0)
    results[f"{name}-in-range"] = [float(rel.max()), 1e-5]


def _loops(results: dict) -> None:
    import jax.numpy as jnp

    import tpjax
    from tests._interpret import NpArg
    from tpjax.adjoint.fused_sweep import StepBody, SweepBody
    from tpjax.codegen import triton as TG
    from tpjax.codegen.triton_loop import KERNEL_NAME, generate_loop
    from tpjax.frontend.loop_body import loop_program
    from tpjax.integrators.stepper import program_stepper

    H = lambda q, p: 0.5 * p**2 - jnp.cos(q)
    st = program_stepper(tpjax.compile(H, (jnp.float32(0.0), jnp.float32(0.0)), method="leapfrog").without_fsal())
    rng = np.random.default_rng(11)
    q, p = rng.uniform(-3, 3, 13).astype(np.float32), rng.uniform(-1, 1, 13).astype(np.float32)
    redo, in_range = _far_lanes(q, p)
    dt = np.float32(DT)
    a = rng.standard_normal((2, 13)).astype(np.float32)
    sweep_carry = [q, p, *a, np.zeros(13, np.float32)]  # state, its cotangent, the cotangent of dt
    runs = (("step", StepBody(st.step), [q, p]), ("sweep", SweepBody(st.step, 2, (), True), sweep_carry))
    for what, body, carry in runs:
        lp = loop_program(body, [np.zeros((), np.float32) for _ in carry], [np.zeros((), np.float32)])
        outs = []
        for bounded in (True, False):
            kern = TG.load_kernel(generate_loop(lp, (False,), bounded_trig=bounded), KERNEL_NAME)
            out = [np.zeros_like(c) for c in carry]
            kern[(4,)](*(NpArg(c) for c in carry), NpArg(np.array([dt])), NpArg(np.array([STEPS], np.int32)), 13,
                       *(NpArg(o) for o in out), BLOCK=BLOCK, FAST_MATH=False)  # fmt: skip
            outs.append(np.stack(out))
        _compare(results, f"loop-{what}", *outs, redo, in_range)


def run_trig(results: dict) -> None:
    _patch_fma()
    _functions(results)
    _pendulum(results)
    _loops(results)
