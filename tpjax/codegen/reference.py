"""The reference interpreter: run a TP-IR program by binding one JAX primitive per instruction.

This is the ground truth for every other backend and the lowering used on CPU, on GPUs through XLA and
on Metal plugins. Under ``jax.jit`` the primitives lower to XLA, which fuses them; under ``jax.grad`` and
``jax.vmap`` their own rules apply, so a program is differentiable and batchable as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import primitives as P
from ..ir.node import Instr, Program
from ..ir.ops import Op
from ..primitives._common import DTYPE_FROM_NAME, scalar


def _np_dtype(name: str):
    return np.dtype(DTYPE_FROM_NAME.get(name, name))


def _val(env: dict, a: Any, dtype):
    return env[a] if isinstance(a, str) else scalar(a, dtype)


def _exec(i: Instr, env: dict, prog: Program, dt) -> tuple:
    if i.op is Op.OPAQUE:  # literals keep their own type: the callable casts them to its operands' dtypes
        return prog.opaque[i.attr("key")](*(env[a] if isinstance(a, str) else a for a in i.args))
    dtype = _np_dtype(i.dtype)
    args = [dt if a == "dt" else _val(env, a, dtype) for a in i.args]
    op = i.op
    if op is Op.FMA:
        return (P.fma(*args),)
    if op is Op.ELEM:
        params = {k: v for k, v in i.attrs if k != "func"}
        return (P.elem(i.attr("func"), *args, **params),)
    if op is Op.SUM:
        return (P.tp_sum(args[0], i.attr("axis")),)
    if op is Op.GRAD_INIT:
        return (P.grad_init(i.args[0], i.shape, dtype),)
    if op is Op.ACC_GRAD:
        return (P.acc_grad(*args),)
    if op is Op.POISSON_J:
        return (P.poisson_j(*args, kind=i.attr("type")),)
    if op is Op.LIE_CROSS:
        return (P.lie_cross(*args),)
    if op is Op.SYMP_STEP:
        return (P.symp_step(env[i.dst[0]], args[0], dt, i.attr("coef")),)
    raise ValueError(f"reference interpreter: no rule for {op}")


def run(prog: Program, inputs: Mapping[str, Any], dt=None) -> dict[str, Any]:
    """Execute ``prog``: ``inputs`` maps LOAD pointers to values; returns STORE pointers to values."""
    env: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for i in prog.instrs:
        if i.op is Op.LOAD:
            ptr = i.args[0]
            if ptr not in inputs:
                raise KeyError(f"TP-IR program loads {ptr!r} but no input of that name was given")
            env[i.dst[0]] = P.load(inputs[ptr])
        elif i.op is Op.STORE:
            out[i.dst[0]] = P.store(env[i.args[0]])
        else:
            for d, v in zip(i.dst, _exec(i, env, prog, dt), strict=True):
                env[d] = v
    return out
