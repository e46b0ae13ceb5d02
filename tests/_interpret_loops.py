"""The fused-loop kernels of the gradient (``codegen.triton_loop``) under Triton's interpreter, against the
reference of ``primitives.fused_loop`` (the same loop through XLA on the CPU).

Group "loops" of ``tests._interpret``. For each system: the compiled step (with and without the FSAL force
carry: the GPU's XLA path drops it) as ``fused_sweep.StepBody`` (the anchored forward run) and as
``fused_sweep.SweepBody`` (the reversible backward sweep: state one step back, cotangents of the state, of
every float parameter and of dt pulled back), over 5 lanes in blocks of 4 (the second block masked), with a
trip count below the loop's maximum; the sweep also with per-lane parameters and dt, and with saved-state
cotangents injected as the step index counts down through multiples of ``EVERY``; and (with the FSAL carry)
as ``fused_sweep.AnchoredSweepBody``, the sweep over all segments of the default gradient: anchors replace the
state every ``EVERY`` steps (from a start that is itself a multiple), their misses recorded per lane; and the
step as the anchored forward run that saves its anchors (``save_every``: every ``SAVE`` steps of ``STEPS``,
the last row the final state after a shorter segment).
"""

from __future__ import annotations

import sys

import numpy as np

STEPS, ACTIVE, LANES, BLOCK = 9, 7, 5, 4
SAVE = 4  # the saving forward run: rows after steps 4, 8 and 9
M0, EVERY, ROWS = 8, 3, 3  # injected rows at m = 6 and 3 (rows 1 and 0) while m counts down 8, 7, ..., 2
TOL = {"float64": 1e-12, "float32": 2e-5}
SYSTEMS = (("pendulum", "float64"), ("pendulum", "float32"), ("kepler", "float64"), ("fpu", "float64"),
           ("lennard_jones", "float64"), ("mlp", "float64"))  # fmt: skip


def cases() -> list[str]:
    out = []
    for name, dtype in SYSTEMS:
        for form in ("fsal", "plain"):
            out += [f"{name}-{dtype}-{form}-step", f"{name}-{dtype}-{form}-step-saving", f"{name}-{dtype}-{form}-sweep"]
        out.append(f"{name}-{dtype}-plain-sweep-per-lane")
        out.append(f"{name}-{dtype}-plain-sweep-saved")
        out.append(f"{name}-{dtype}-fsal-sweep-anchored")
    # the Lennard-Jones sweep without the FSAL carry (four force evaluations per step) is over the statement
    # limit: it is refused (NotImplementedError, the XLA loop runs), checked in test_gradient_kernels.py
    return [c for c in out if not c.startswith("lennard_jones-float64-plain-sweep")]


def _zoo():
    from tests.hamiltonians import KERNEL_ZOO, ZOO

    return {**ZOO, **KERNEL_ZOO}


def _run_case(body, carry, inv, lane_inv, dtype, inject=None, save=False):
    """(kernel output, reference output) of ``STEPS``-bounded, ``ACTIVE``-trip fused loops; ``inject``:
    None or (arrays, carry indices[, mode, m0]): rows added (mode "add") or anchored every ``EVERY`` steps
    counting down from ``M0`` (or ``m0``); ``save``: all ``STEPS`` trips, the rows saved every ``SAVE``."""
    import jax.numpy as jnp

    from tests._interpret import NpArg
    from tpjax.codegen import triton as TG
    from tpjax.codegen.triton_loop import KERNEL_NAME, generate_loop
    from tpjax.frontend.loop_body import loop_program
    from tpjax.primitives.fused_loop import fused_loop

    per_lane = lambda x: np.asarray(x).shape[1:]
    lp = loop_program(
        body,
        [np.zeros(per_lane(c), dtype) for c in carry],
        [np.zeros(per_lane(v) if flag else np.shape(v), dtype) for v, flag in zip(inv, lane_inv, strict=True)],
    )
    try:
        into = () if inject is None else tuple(inject[1])
        mode, m0 = (inject[2], inject[3]) if inject is not None and len(inject) > 2 else ("add", M0)
        kern = TG.load_kernel(generate_loop(lp, tuple(lane_inv), into, inject_mode=mode, save=save), KERNEL_NAME)
    except NotImplementedError as e:
        return str(e), None
    rows = -(-STEPS // SAVE)
    outs = [np.zeros_like(c) for c in carry] + ([np.zeros((rows, *np.shape(c)), dtype) for c in carry] if save else [])
    grid = ((LANES + BLOCK - 1) // BLOCK,)
    extra, scalars, kw, trips = [], [LANES], {}, (STEPS if save else ACTIVE)
    if save:
        scalars, kw = [LANES, SAVE], dict(save_every=SAVE)
    if inject is not None:
        extra = [NpArg(np.asarray(x)) for x in inject[0]] + [NpArg(np.array([m0], np.int32))]
        scalars = [LANES, EVERY]
        kw = dict(inject=[jnp.asarray(x) for x in inject[0]], inject_into=into, inject_every=EVERY, m0=m0,
                  inject_mode=mode)  # fmt: skip
    kern[grid](*(NpArg(np.asarray(x)) for x in (*carry, *inv)), *extra, NpArg(np.array([trips], np.int32)),
               *scalars, *(NpArg(o) for o in outs), BLOCK=BLOCK, FAST_MATH=False)  # fmt: skip
    ref = fused_loop(body, [jnp.asarray(c) for c in carry], [jnp.asarray(v) for v in inv], None if save else ACTIVE,
                     n_max=STEPS, lanes=1, lane_invariants=tuple(lane_inv), **kw)  # fmt: skip
    return outs, [np.asarray(r) for r in ref]


def run_loops(results: dict) -> None:
    import jax.numpy as jnp

    import tpjax
    from tpjax.adjoint.fused_sweep import AnchoredSweepBody, StepBody, SweepBody
    from tpjax.integrators.stepper import program_stepper

    rng = np.random.default_rng(7)
    cases_ = set(cases())
    for name, dtype in SYSTEMS:
        H, state = _zoo()[name]
        q0, p0 = state(getattr(jnp, dtype))
        comp = tpjax.compile(H, (q0, p0), method="leapfrog")
        for form in ("fsal", "plain"):
            c = comp if form == "fsal" else comp.without_fsal()
            st = program_stepper(c)
            z0 = [np.asarray(x) for x in st.initial(st.params, (q0, p0))]
            z = [np.stack([x + 0.02 * rng.standard_normal(x.shape) for _ in range(LANES)]).astype(dtype) for x in z0]
            params = [np.asarray(p, dtype) for p in st.params]
            dt = np.asarray(0.03, dtype)
            a = [rng.standard_normal(x.shape).astype(dtype) for x in z]
            want = tuple(True for _ in params)
            todo = [
                ("step", StepBody(st.step), z, [*params, dt], (False,) * (len(params) + 1)),
                ("step-saving", StepBody(st.step), z, [*params, dt], (False,) * (len(params) + 1)),
            ]
            g = [np.zeros((LANES, *p.shape), dtype) for p in params] + [np.zeros((LANES,), dtype)]
            sweep = SweepBody(st.step, len(z), want, True)
            todo.append(("sweep", sweep, [*z, *a, *g], [*params, dt], (False,) * (len(params) + 1)))
            if form == "plain":
                lane_p = [np.stack([p * (1 + 0.01 * k) for k in range(LANES)]).astype(dtype) for p in params]
                lane_dt = (dt * (1 + 0.1 * np.arange(LANES))).astype(dtype)
                todo.append(("sweep-per-lane", sweep, [*z, *a, *g], [*lane_p, lane_dt], (True,) * (len(params) + 1)))
            inj = None
            if form == "plain":
                rows = [rng.standard_normal((ROWS, *x.shape)).astype(dtype) for x in z]
                todo.append(("sweep-saved", sweep, [*z, *a, *g], [*params, dt], (False,) * (len(params) + 1)))
                inj = (rows, tuple(range(len(z), 2 * len(z))))
            if form == "fsal":  # anchors near the states (a rebuild's miss), the records starting at zero
                record = [np.zeros((LANES,), dtype)] * 2
                rows = [(x[None] + 1e-3 * rng.standard_normal((ROWS, *x.shape))).astype(dtype) for x in z]
                anchored = (rows, tuple(range(len(z))), "anchor", EVERY * ROWS)  # hits at m = 9, 6, 3
                todo.append(("sweep-anchored", AnchoredSweepBody(sweep), [*z, *a, *g, *record], [*params, dt],
                             (False,) * (len(params) + 1)))  # fmt: skip
            for what, body, carry, inv, lane_inv in todo:
                if f"{name}-{dtype}-{form}-{what}" not in cases_:
                    continue
                inject = {"sweep-saved": inj, "sweep-anchored": anchored if form == "fsal" else None}.get(what)
                got, ref = _run_case(body, carry, inv, lane_inv, dtype, inject, save=what == "step-saving")
                if ref is None:
                    print(f"{name}-{dtype}-{form}-{what}: {got}", file=sys.stderr)
                    results[f"{name}-{dtype}-{form}-{what}"] = [float("inf"), TOL[dtype]]
                    continue
                scale = max(1.0, max(float(np.abs(r).max()) for r in ref))
                err = max(float(np.abs(x - r).max()) for x, r in zip(got, ref, strict=True)) / scale
                results[f"{name}-{dtype}-{form}-{what}"] = [err, TOL[dtype]]
