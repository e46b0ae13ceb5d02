"""The fused-loop kernel: ``n`` iterations of a traced loop body per lane, every value in registers.

``generate_loop(lp, lane_invariants)`` writes the ``@triton.jit`` source for a ``frontend.loop_body.LoopProgram``.
Each Triton program takes ``BLOCK`` lanes; lane i's carried values (components in row-major order) are
loaded once, the loop ``for _ in range(n)`` runs the body's instructions (``triton_emit._Emitter``), and the
carried values are stored once. An invariant is per lane (``lane_invariants[k]``: laid out like a carried
value) or shared by all lanes (read from the same address by every lane). The body's own constants
(``ptr_c<k>``) are compile-time constants of the kernel. Signature (jax-triton: inputs, scalars, outputs)::

    fused_loop_kernel(x0_ptr, ..., v0_ptr, ..., n_ptr, N, out_x0_ptr, ..., BLOCK: tl.constexpr,
                      FAST_MATH: tl.constexpr)

``n`` is read from memory (an int32 array: a traced trip count is not a recompile). float32 sin/cos take
``kernels.trig``'s bounded forms with the same block-uniform libdevice redo as the step kernel
(``triton_source``): a block whose largest |argument| passed TRIG_BOUND reloads its carried values and runs
the ``n`` iterations again with libdevice (invariants are never written, so they are kept). Used by the gradient of
the fused executors: the reversible backward sweep and the anchored forward run (``primitives.fused_loop``, whose CUDA
lowering ``executors.fused_loop_kernel`` launches it). The anchored forward run saves its anchors from the
loop (``save=True``): every ``every`` iterations and after the last, the carried values are written to row
``row`` of the outputs ``out_s<k>`` (laid out ``(rows, N, *shape)``, so the lanes of a row are contiguous).
"""

from __future__ import annotations

import numpy as np

from ..ir.ops import Op
from .triton_block import _OPAQUE_MSG, uses_bounded_trig
from .triton_emit import MAX_COMPONENTS, _Emitter
from .triton_source import _HEADER, MAX_STATEMENTS, _count

KERNEL_NAME = "fused_loop_kernel"
_DTYPES = {"float32": "f32", "float64": "f64"}
_TL = {"f32": "tl.float32", "f64": "tl.float64"}


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _names(base: str, shape) -> list[str]:
    return [base] if tuple(shape) == () else [f"{base}_{j}" for j in range(_size(shape))]


#: largest per-lane state (the first carried operand, q) the unrolled loop kernels take. The default gradient
#: of an FPU chain (16,384 x 1000 steps, H200, 2026-12-02): d = 32 7.1 ms with the loop kernels against 23.7 on
#: XLA; d = 48 39.2 against 29.1; d = 64 56.3 against 35.9 (the kernels' registers spill).
LOOP_STATE = 32


def _dtype(lp) -> str:
    kinds = {np.dtype(a.dtype).name for a in (*lp.carry, *lp.invariants)}
    if len(kinds) != 1 or next(iter(kinds)) not in _DTYPES:
        raise NotImplementedError(f"tpjax fused loop: one float32 or float64 dtype for every operand, got {kinds}")
    for a in (*lp.carry, *lp.invariants):
        if _size(a.shape) > MAX_COMPONENTS:
            raise NotImplementedError(f"tpjax fused loop: an operand of shape {a.shape} (> {MAX_COMPONENTS})")
    state = _size(lp.carry[0].shape) if lp.carry else 0
    if state > LOOP_STATE:
        raise NotImplementedError(
            f"tpjax fused loop: a state of {state} components per lane (more than {LOOP_STATE}: the unrolled loop "
            "kernels of larger states ran slower than the XLA loop on the H200)"
        )
    return _DTYPES[next(iter(kinds))]


def _uniform(lp, lane_invariants) -> set[str]:
    """Registers whose value is the same for every lane (computed from shared invariants and constants only):
    Triton scalars, which a loop-carried value must not become (it is a [BLOCK] tensor)."""
    uniform: set[str] = set()
    for i in lp.program.instrs:
        if i.op is Op.LOAD:
            ptr = i.args[0]
            if ptr.startswith("ptr_c") or (ptr.startswith("ptr_v") and not lane_invariants[int(ptr[5:])]):
                uniform.update(i.dst)
        elif i.op is not Op.STORE and all(not isinstance(a, str) or a in uniform for a in i.args):
            uniform.update(i.dst)
    return uniform


def _body(lp, dtype: str, lane_invariants, trig: str) -> list[str]:
    em = _Emitter(dtype, "", _OPAQUE_MSG, lp.program.opaque)
    em.trig = trig
    uniform = _uniform(lp, lane_invariants)
    for i in lp.program.instrs:
        if i.op is Op.LOAD:
            ptr, dst = i.args[0], i.dst[0]
            em.shapes[dst] = i.shape
            if ptr.startswith("ptr_c"):  # a constant of the body: folded (integers kept whole for OPAQUE rules)
                value = np.asarray(lp.consts[int(ptr[5:])]).reshape(i.shape)
                em.arrays[dst] = value
                for name, v in zip(em.names(dst, i.shape), value.reshape(-1), strict=True):
                    em.consts[name] = v if value.dtype.kind in "biu" else em.np(v)
                continue
            k = int(ptr[5:])
            shared_array = ptr.startswith("ptr_v") and not lane_invariants[k] and i.shape != ()
            base = ("x" if ptr.startswith("ptr_x") else "v") + ptr[5:]
            for j, (name, src) in enumerate(zip(em.names(dst, i.shape), _names(base, i.shape), strict=True)):
                em.consts.pop(name, None)
                if shared_array:  # read where it is used (uniform loads hit the cache): no registers held
                    src = f"tl.load(v{k}_ptr + {j})"
                em.lines.append(f"{name} = {src}  # LOAD {ptr}")
        elif i.op is Op.STORE:
            base, reg = "x" + i.dst[0][5:], i.args[0]
            for j, name in enumerate(_names(base, i.shape)):
                value = em.tensor(em.component(reg, j))
                if reg in uniform and not em.is_const(em.component(reg, j)):
                    value = f"tl.zeros([BLOCK], {_TL[dtype]}) + {value}"  # the same for every lane: a tensor
                em.lines.append(f"{name} = {value}  # STORE {i.dst[0]}")
        else:
            em.instr(i)
    return em.lines


def _inject_start(inject_into) -> list[str]:
    """Before the loop: the step index's phase and the next row, counted down without a division per step
    (an integer division by a runtime value is a long instruction sequence on the GPU)."""
    if not inject_into:
        return []
    return ["phase = m0 % every  # m = m0 - i is a multiple of every where phase == 0",
            "row = m0 // every - 1  # the row of the next multiple"]  # fmt: skip


def _inject(lp, inject_into, mode: str) -> list[str]:
    """At step m = m0 - i, a multiple of ``every``, row m // every - 1 of each injected array: added to its
    carried value (mode "add"), or (mode "anchor") replacing it after the miss is recorded into the last two
    carried values, the per-lane worst max |carried - row| and the sum of every |carried - row|."""
    if not inject_into:
        return []
    out = ["if phase == 0:", "    at_row = row.to(tl.int64)"]
    worst, total = f"x{len(lp.carry) - 2}", f"x{len(lp.carry) - 1}"
    for j, k in enumerate(inject_into):
        d = _size(lp.carry[k].shape)
        for c, name in enumerate(_names(f"x{k}", lp.carry[k].shape)):
            value = f"tl.load(inj{j}_ptr + at_row * N * {d} + offs * {d} + {c}, mask=mask, other=0.0)"
            if mode == "add":
                out.append(f"    {name} = {name} + {value}")
            else:
                out += [f"    anchor = {value}", f"    miss = tl.abs({name} - anchor)",
                        f"    {worst} = tl.maximum({worst}, miss)", f"    {total} = {total} + miss",
                        f"    {name} = anchor"]  # fmt: skip
    out += ["    row = row - 1", "    phase = every"]
    return out + ["phase = phase - 1"]


def _save(lp) -> list[str]:
    """After an iteration: where ``every`` more have run, or at the last, the carried values go to the next row
    of the saved outputs (a countdown and a scalar branch, no division per step)."""
    out = ["left = left - 1", "m = m + 1", "if (left == 0) | (m == n):", "    at_row = row.to(tl.int64)"]
    for k, a in enumerate(lp.carry):
        d = _size(a.shape)
        for c, name in enumerate(_names(f"x{k}", a.shape)):
            out.append(f"    tl.store(out_s{k}_ptr + at_row * N * {d} + offs * {d} + {c}, {name}, mask=mask)")
    return out + ["    row = row + 1", "    left = every"]


def _carry_loads(lp) -> list[str]:
    return [f"{name} = tl.load(x{k}_ptr + offs * {_size(a.shape)} + {j}, mask=mask, other=0.0)"
            for k, a in enumerate(lp.carry) for j, name in enumerate(_names(f"x{k}", a.shape))]  # fmt: skip


def _loop(lp, dtype: str, lane_invariants, inject_into, trig: str, mode: str, save: bool) -> list[str]:
    """The ``n`` iterations (one level indented), float32 sin/cos in form ``trig`` (``triton_emit._Emitter``)."""
    ind = "    "
    start = ["left = every + n * 0", "m = n * 0", "row = n * 0"] if save else _inject_start(inject_into)
    lines = [ind + ln for ln in start] + [ind + "for _ in range(n):"]
    lines += [ind * 2 + ln for ln in _inject(lp, inject_into, mode)]
    lines += [ind * 2 + ln for ln in _body(lp, dtype, lane_invariants, trig)]
    return lines + ([ind * 2 + ln for ln in _save(lp)] if save else [])


def _kernel_body(lp, dtype: str, lane_invariants, inject_into, bounded: bool, mode: str, save: bool) -> list[str]:
    """Loads, the loop (and with ``bounded``, float32 sin/cos by ``kernels.trig`` and the redo), stores."""
    ind = "    "
    body = []
    if bounded:
        body.append(ind + "trig_amax = tl.zeros([BLOCK], tl.float32)  # largest |argument| of a bounded sin/cos")
    body += [ind + ln for ln in _carry_loads(lp)]
    for k, (a, lane) in enumerate(zip(lp.invariants, lane_invariants, strict=True)):
        d = _size(a.shape)
        if lane:
            body += [ind + f"{name} = tl.load(v{k}_ptr + offs * {d} + {j}, mask=mask, other=0.0)"
                     for j, name in enumerate(_names(f"v{k}", a.shape))]  # fmt: skip
        elif a.shape == ():
            body.append(ind + f"v{k} = tl.load(v{k}_ptr)")  # a shared scalar: one register
    if inject_into:
        body.append(ind + "m0 = tl.load(m0_ptr)")
    body += _loop(lp, dtype, lane_invariants, inject_into, "bounded" if bounded else "libdevice", mode, save)
    if bounded:  # a block with an argument beyond TRIG_BOUND runs again from its initial values with libdevice
        body += [ind + "if not FAST_MATH:", ind * 2 + "if any_out_of_range(trig_amax):"]
        body += [ind * 3 + ln for ln in _carry_loads(lp)]
        body += [ind * 2 + ln for ln in _loop(lp, dtype, lane_invariants, inject_into, "libdevice", mode, save)]
    for k, a in enumerate(lp.carry):
        d = _size(a.shape)
        for j, name in enumerate(_names(f"x{k}", a.shape)):
            body.append(ind + f"tl.store(out_x{k}_ptr + offs * {d} + {j}, {name}, mask=mask)")
    return body


def generate_loop(lp, lane_invariants: tuple[bool, ...], inject_into: tuple[int, ...] = (),
                  bounded_trig: bool = True, inject_mode: str = "add", save: bool = False) -> str:  # fmt: skip
    """Kernel source for ``lp``; ``lane_invariants[k]``: invariant k is per lane (else shared);
    ``inject_into``: the carried values that get a row of an injected array where the step index counts
    down through a multiple of ``every``, added or (``inject_mode="anchor"``) replacing them with the misses
    recorded (``primitives.fused_loop``); ``save``: the carried values also written to a row of ``out_s<k>``
    every ``every`` iterations and after the last (not with injection); ``bounded_trig=False``: float32
    sin/cos by libdevice alone (the tests' reference)."""
    dtype = _dtype(lp)
    if inject_mode not in ("add", "anchor"):
        raise ValueError(f"generate_loop: inject_mode must be 'add' or 'anchor', got {inject_mode!r}")
    if len(lane_invariants) != len(lp.invariants):
        raise ValueError("generate_loop: one lane flag per invariant")
    if save and inject_into:
        raise ValueError("generate_loop: a loop saves its rows or takes injections, not both")
    nc, nv = len(lp.carry), len(lp.invariants)
    ind = "    "
    args = "".join(f"x{k}_ptr, " for k in range(nc)) + "".join(f"v{k}_ptr, " for k in range(nv))
    outs = ", ".join([f"out_x{k}_ptr" for k in range(nc)] + ([f"out_s{k}_ptr" for k in range(nc)] if save else []))
    if inject_into:
        args += "".join(f"inj{j}_ptr, " for j in range(len(inject_into))) + "m0_ptr, "
    scalars = "N, every, " if inject_into or save else "N, "
    lines = [
        f"def {KERNEL_NAME}({args}n_ptr, {scalars}{outs},",
        "                      BLOCK: tl.constexpr, FAST_MATH: tl.constexpr):",
        ind + "offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        ind + "mask = offs < N",
        ind + "n = tl.load(n_ptr)",
    ]
    bounded = bounded_trig and dtype == "f32" and uses_bounded_trig(lp.program)
    body = _kernel_body(lp, dtype, lane_invariants, inject_into, bounded, inject_mode, save)
    if bounded and _count(lines + body) > MAX_STATEMENTS:  # the redo doubles the loop: keep libdevice alone
        body = _kernel_body(lp, dtype, lane_invariants, inject_into, False, inject_mode, save)
    lines += body
    statements = _count(lines)
    if statements > MAX_STATEMENTS:
        raise NotImplementedError(
            f"tpjax fused loop: the unrolled kernel would have {statements} statements (more than "
            f"{MAX_STATEMENTS}); the XLA loop is used"
        )
    title = f"fused loop: {nc} carried, {nv} invariant, dtype={dtype}"
    return _HEADER.format(title=title) + "\n@triton.jit\n" + "\n".join(lines) + "\n"
