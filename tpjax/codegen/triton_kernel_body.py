"""The fused step kernel's body, line by line: signature, preamble, FSAL prologue, time loop (plain or saving),
the block-uniform libdevice redo of the bounded sin/cos, and the final stores (``triton_source`` assembles
the module and documents the kernel's contract)."""

from __future__ import annotations

from ..ir.node import Program
from .triton_block import _emit_block, _stores

KERNEL_NAME = "fused_step_kernel"


def _signature(save: bool, cargs: str) -> list[str]:
    if save:
        return [
            f"def {KERNEL_NAME}(q_ptr, p_ptr, dt_ptr, {cargs}N, n_saves, save_every, out_q_ptr, out_p_ptr,",
            "                      save_q_ptr, save_p_ptr, BLOCK: tl.constexpr, FAST_MATH: tl.constexpr):",
        ]
    return [
        f"def {KERNEL_NAME}(q_ptr, p_ptr, dt_ptr, {cargs}N, n_steps, out_q_ptr, out_p_ptr,",
        "                      BLOCK: tl.constexpr, FAST_MATH: tl.constexpr):",
    ]


def _preamble(d: int | None, scalars: list[int], bounded: bool) -> list[str]:
    pre = [
        "offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "mask = offs < N",
        "dt = tl.load(dt_ptr)",
        *(f"c{k} = tl.load(c{k}_ptr)" for k in scalars),
    ]
    if bounded:
        pre.append("trig_amax = tl.zeros([BLOCK], tl.float32)  # largest |argument| of a bounded sin/cos")
    return pre + _state_loads(d)


def _state_loads(d: int | None) -> list[str]:
    if d is None:
        return [
            "q = tl.load(q_ptr + offs, mask=mask, other=0.0)",
            "p = tl.load(p_ptr + offs, mask=mask, other=0.0)",
        ]
    # (N, d) row-major: component k of system i at i * d + k
    return [f"{x}_{k} = tl.load({x}_ptr + offs * {d} + {k}, mask=mask, other=0.0)" for x in "qp" for k in range(d)]


def _run(step: Program, prologue: Program | None, dtype: str, d: int | None, save: bool, fixed, trig: str):
    """The FSAL prologue and the time loop, one level indented, with sin/cos in form ``trig``."""
    ind = "    "
    body = []
    if prologue is not None:
        body.append(ind + "# ---- prologue: initial force (computed once) ----")
        body += [ind + ln for ln in _emit_block(prologue, "i_", dtype, d, fixed, trig)]
    return body + _time_loop(step, dtype, d, save, fixed, trig)


def _redo(step: Program, prologue: Program | None, d: int | None, save: bool, fixed) -> list[str]:
    """The block-uniform redo of a block whose bounded sin/cos saw an argument beyond TRIG_BOUND: reload
    the state and run again with libdevice (saved rows are rewritten)."""
    ind = "    "
    return [
        ind + "# ---- an argument beyond kernels.trig.TRIG_BOUND: this block runs again with libdevice ----",
        ind + "if not FAST_MATH:",
        ind * 2 + "if any_out_of_range(trig_amax):",
        *(ind * 3 + ln for ln in _state_loads(d)),
        *(ind * 2 + ln for ln in _run(step, prologue, "f32", d, save, fixed, "libdevice")),
    ]


def _time_loop(step: Program, dtype: str, d: int | None, save: bool, fixed=None, trig="libdevice") -> list[str]:
    ind = "    "
    body = [ind + "# ---- time loop: one step per iteration, state and force in registers ----"]
    if not save:
        body.append(ind + "for _ in range(n_steps):")
        body += [ind * 2 + ln for ln in _emit_block(step, "", dtype, d, fixed, trig)]
        return body + [ind + "# ---- end of time loop ----"]
    body += [
        ind + "srow = offs  # int64 offset of this program's systems in the current saved row",
        ind + "for _ in range(n_saves):",
        ind * 2 + "for _ in range(save_every):",
    ]
    body += [ind * 3 + ln for ln in _emit_block(step, "", dtype, d, fixed, trig)]
    return body + [
        ind * 2 + "# ---- end of time loop ----",
        *(ind * 2 + ln for ln in _stores("save", "srow", d)),
        ind * 2 + "srow += N",
    ]


def _kernel_body(step, prologue, dtype, d, save, fixed, ncon, scalars, bounded: bool) -> list[str]:
    """The kernel's lines: signature, preamble, prologue and time loop (with float32 sin/cos by
    ``kernels.trig`` and the libdevice redo when ``bounded``), stores."""
    ind = "    "
    body = _signature(save, "".join(f"c{k}_ptr, " for k in range(ncon)))
    body += [ind + ln for ln in _preamble(d, scalars, bounded)]
    body += _run(step, prologue, dtype, d, save, fixed, "bounded" if bounded else "libdevice")
    if bounded:
        body += _redo(step, prologue, d, save, fixed)
    return body + [ind + ln for ln in _stores("out", "offs", d)]


def _count(body: list[str]) -> int:
    return sum(1 for ln in body if not ln.lstrip().startswith("#"))
