"""Run Triton kernels on the CPU under ``TRITON_INTERPRET=1`` and compare them with the XLA path.

Run as ``python -m tests._interpret {generated,rigid_body}`` from the repository root (``tests/
test_interpreted_kernels.py`` does, in a subprocess: the interpreter is chosen when triton is imported).
It prints one JSON line: ``{case: [max_abs_error, tolerance]}``. ``cases(group)`` lists the case names
without importing triton.

The interpreter reads arguments as torch tensors (``data_ptr()``, ``untyped_storage()``, ``new_empty``,
``set_``); ``NpArg`` gives a numpy array that face, so no torch is needed. Triton 3.6's interpreter converts
a loop bound with ``int(ndarray of shape (1,))``, which numpy >= 2.5 refuses; ``_patch_index`` makes that
``int(data.reshape(-1)[0])``. libdevice calls have no interpreter form; ``_patch_libdevice`` evaluates them
in numpy (so the comparison checks the kernel's structure and arithmetic, not libdevice's last bits).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

N_SYSTEMS, BLOCK, STEPS, SAVE_EVERY = 5, 4, 12, 4  # two programs, the second one masked
TOL = {"float64": 1e-12, "float32": 1e-5}
#: rigid body: > CHUNK (64) steps; bodies 0-3 (block 0) small enough for the POLY sin/cos branch, block 1
#: holds a fast body (near the stable axis) that forces libdevice sin/cos at both orders.
RB_STEPS = 70
RB_L = np.array([[1.0, 0.1, 0.5], [0.3, -0.2, 0.9], [-0.7, 0.4, 0.2], [0.1, 1.1, -0.3], [40.0, 2.0, 1.0]])


def cases(group: str) -> list[str]:
    from tests.hamiltonians import ZOO

    if group == "loops":
        from tests._interpret_loops import cases as loop_cases

        return loop_cases()
    if group == "trig":
        runs = ("pendulum-plain", "pendulum-save", "loop-step", "loop-sweep")
        return ["functions-bits", *(f"{r}-{c}" for r in runs for c in ("redo", "in-range"))]
    if group == "tile":
        from tests._interpret_tile import cases as tile_cases

        return tile_cases()
    if group == "literals":
        from tests._interpret_literals import cases as literal_cases

        return literal_cases()
    if group == "rigid_body":
        return [f"rigid_body-order{o}-{d}" for o in (2, 4) for d in TOL]
    if group == "shapes":
        from tests.hamiltonians import KERNEL_ZOO

        return [f"{name}-{m}-{d}-{v}" for name, m, d in _shape_todo(KERNEL_ZOO) for v in ("plain", "save")]
    out = [f"{name}-leapfrog-{d}-{v}" for name in ZOO for d in TOL for v in ("plain", "save")]
    return out + [f"pendulum-{m}-float64-{v}" for m in explicit_methods() if m != "leapfrog" for v in ("plain", "save")]


def explicit_methods() -> list[str]:
    from tpjax import METHODS

    return sorted(k for k, m in METHODS.items() if getattr(m, "explicit", False) and "canonical" in m.structures)


class _Storage:
    def __init__(self, a):
        self.a = a

    def data_ptr(self):
        return self.a.ctypes.data

    def cpu(self):
        return self  # already host memory

    def copy_(self, other):
        pass  # the interpreter wrote through the same pointer


class NpArg:
    """A C-contiguous numpy array as the interpreter sees a tensor (the kernel reads and writes it)."""

    def __init__(self, a=None):
        self.a = a if a is None else np.ascontiguousarray(a)

    @property
    def dtype(self):
        import triton.language as tl

        return {"float32": tl.float32, "float64": tl.float64, "int32": tl.int32}[self.a.dtype.name]

    def data_ptr(self):
        return self.a.ctypes.data

    def untyped_storage(self):
        return _Storage(self.a)

    def new_empty(self, *args, **kwargs):
        return NpArg()

    def set_(self, storage, *args):
        self.a = storage.a
        return self

    def storage_offset(self):
        return 0

    def size(self):
        return self.a.shape

    def stride(self):
        return tuple(s // self.a.itemsize for s in self.a.strides)


def _patch_index():
    from triton.runtime import interpreter

    orig = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        orig(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    interpreter._patch_lang_tensor = patched


#: libdevice functions the generated kernels call; ``triton.language.extra.libdevice`` holds stubs that the
#: compiler resolves, so under the interpreter they return None. Here they become numpy on the block.
_LIBDEVICE = {
    "sqrt_rn": np.sqrt, "exp": np.exp, "log": np.log, "tan": np.tan, "tanh": np.tanh, "log1p": np.log1p,
    "expm1": np.expm1, "rsqrt": lambda x: 1 / np.sqrt(x), "pow": np.power, "atan2": np.arctan2, "rint": np.rint,
}  # fmt: skip


def _patch_libdevice():
    import triton.language as tl
    from triton.language.extra import libdevice
    from triton.runtime.interpreter import TensorHandle

    def lift(f):
        def g(*xs, _semantic=None):
            h = xs[0].handle
            data = f(*(x.handle.data for x in xs)).astype(h.data.dtype)
            return tl.core.tensor(TensorHandle(data, h.dtype.scalar), xs[0].type)

        return g

    for name, f in _LIBDEVICE.items():
        setattr(libdevice, name, lift(f))


def _systems(q0, p0, rng):
    """N_SYSTEMS perturbations of one (d,) state, (N, d) each."""
    q0, p0 = np.asarray(q0), np.asarray(p0)
    dq = 0.05 * rng.standard_normal((N_SYSTEMS, *q0.shape))
    dp = 0.05 * rng.standard_normal((N_SYSTEMS, *p0.shape))
    return q0 + dq, p0 + dp


def _shape_todo(zoo) -> list[tuple[str, str, str]]:
    """float64 for every system, float32 for the Lennard-Jones cluster (the masks and the dtype of a
    materialised constant); other methods are covered by the pendulum in the "generated" group."""
    return [(n, "leapfrog", "float64") for n in zoo] + [("lennard_jones", "leapfrog", "float32")]


def run_generated(results: dict) -> None:
    from tests.hamiltonians import ZOO

    todo = [(n, "leapfrog", d) for n in ZOO for d in TOL] + [("pendulum", m, "float64") for m in explicit_methods()]
    _run(ZOO, dict.fromkeys(todo), results)


def run_shapes(results: dict) -> None:
    from tests.hamiltonians import KERNEL_ZOO

    _run(KERNEL_ZOO, _shape_todo(KERNEL_ZOO), results)


def _run(zoo, todo, results: dict, form: str = "auto", key: str = "{name}-{method}-{dtype}-{v}") -> None:
    """Each (name, method, dtype) of ``todo``: the kernel of ``form`` (plain and saving) on N_SYSTEMS
    perturbed systems against the XLA trajectory; errors relative to max(1, |state|)."""
    import jax
    import jax.numpy as jnp

    import tpjax
    from tpjax.codegen import triton as TG
    from tpjax.codegen.triton_source import generate

    dt = 0.05
    for name, method, dtype in todo:
        H, state = zoo[name]
        q0, p0 = state(getattr(jnp, dtype))
        comp = tpjax.compile(H, (q0, p0), method=method)
        q, p = (x.astype(dtype) for x in _systems(q0, p0, np.random.default_rng(len(results))))
        npd = np.dtype(dtype)
        cs = [NpArg(np.asarray(c, npd).reshape(-1)) for c in comp.consts]  # arrays flat, as the launcher
        plain_src, save_src = generate(comp, form=form), generate(comp, save=True, form=form)
        table = TG.launch_constants(plain_src)[2]
        cs += [NpArg(np.asarray(table, npd))] if table is not None else []  # the tile form's constant table
        dtv = NpArg(np.array([dt], npd))
        grid = ((N_SYSTEMS + BLOCK - 1) // BLOCK,)
        oq, op = np.zeros_like(q), np.zeros_like(p)
        TG.load_kernel(plain_src)[grid](NpArg(q), NpArg(p), dtv, *cs, N_SYSTEMS, STEPS, NpArg(oq), NpArg(op),
                                        BLOCK=BLOCK, FAST_MATH=False)  # fmt: skip
        k = STEPS // SAVE_EVERY
        sq, sp = np.zeros((k, *q.shape), npd), np.zeros((k, *p.shape), npd)
        sq_, sp_ = np.zeros_like(q), np.zeros_like(p)
        TG.load_kernel(save_src)[grid](NpArg(q), NpArg(p), dtv, *cs, N_SYSTEMS, k, SAVE_EVERY, NpArg(sq_),
                                       NpArg(sp_), NpArg(sq), NpArg(sp), BLOCK=BLOCK, FAST_MATH=False)  # fmt: skip
        traj = jax.vmap(lambda a, b, H=H, m=method: tpjax.trajectory(H, (a, b), dt=dt, steps=STEPS,
                                                                    save_every=SAVE_EVERY, method=m,
                                                                    backend="xla").states)  # fmt: skip
        Q, P = (np.asarray(x) for x in traj(jnp.asarray(q), jnp.asarray(p)))  # (N, k + 1, d)
        plain = max(np.abs(oq - Q[:, -1]).max(), np.abs(op - P[:, -1]).max())
        saved = max(np.abs(sq - Q[:, 1:].swapaxes(0, 1)).max(), np.abs(sp - P[:, 1:].swapaxes(0, 1)).max())
        saved = max(saved, np.abs(sq_ - Q[:, -1]).max(), np.abs(sp_ - P[:, -1]).max())
        scale = max(1.0, float(np.abs(Q).max()), float(np.abs(P).max()))
        for v, err in (("plain", plain), ("save", saved)):
            results[key.format(name=name, method=method, dtype=dtype, v=v)] = [float(err) / scale, TOL[dtype]]


def run_rigid_body(results: dict) -> None:
    import jax.numpy as jnp
    from jax import lax

    from kernels.rigid_body import rigid_body_kernel
    from tpjax.integrators.rigid_body import rigid_body_order4, rigid_body_strang

    inertia, dt = np.array([1.0, 2.0, 3.0]), 0.05
    for order, f in ((2, rigid_body_strang), (4, rigid_body_order4)):
        for dtype in TOL:
            L = RB_L.astype(dtype)
            out = np.zeros_like(L)
            args = (NpArg(L), NpArg(inertia.astype(dtype)), NpArg(np.array([dt], dtype)), len(L), RB_STEPS)
            rigid_body_kernel[(2,)](*args, NpArg(out), ORDER=order, FAST_MATH=False, BLOCK=BLOCK)
            I, h = jnp.asarray(inertia, dtype), jnp.asarray(dt, dtype)
            ref = np.asarray(lax.fori_loop(0, RB_STEPS, lambda _, x, f=f, h=h, I=I: f(x, h, I), jnp.asarray(L)))
            scale = np.abs(ref).max(axis=-1, keepdims=True)  # relative to each body's |L|
            results[f"rigid_body-order{order}-{dtype}"] = [float(np.max(np.abs(out - ref) / scale)), TOL[dtype]]


def main(group: str) -> None:
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    _patch_index()
    _patch_libdevice()
    results: dict = {}
    if group == "trig":
        from tests._interpret_trig import run_trig

        run_trig(results)
    else:
        from tests._interpret_literals import run_literals
        from tests._interpret_loops import run_loops
        from tests._interpret_tile import run_tile

        run = {"generated": run_generated, "rigid_body": run_rigid_body, "shapes": run_shapes, "loops": run_loops,
               "tile": run_tile, "literals": run_literals}  # fmt: skip
        run[group](results)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
