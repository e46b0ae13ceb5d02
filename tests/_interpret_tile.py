"""The tile form of the fused kernel (``codegen.triton_tile``) under Triton's interpreter, against XLA.

Group "tile" of ``tests._interpret``: every Hamiltonian of ``tests.hamiltonians`` the tile form writes (the
small zoo, the shapes zoo's Lennard-Jones cluster, relu well and FPU chain, and ``TILE_ZOO``: FPU d = 128,
32 Lennard-Jones atoms, a pendulum chain of d = 100), forced to the tile form (``form="tile"``), leapfrog,
float64 and float32, plain and saving kernels, against ``tpjax.trajectory(backend="xla")``. ``REFUSED``
are the ones it leaves to the unrolled form or XLA (probed OPAQUE ops); tests/test_tile_kernels.py checks
that they are refused with a reason.
"""

from __future__ import annotations

#: Hamiltonians with ops the tile form does not write (gather / scatter-add with index arrays, dot_general).
REFUSED = ("gravity", "mlp")
DTYPES = ("float64", "float32")


def zoo() -> dict:
    from tests.hamiltonians import KERNEL_ZOO, TILE_ZOO, ZOO

    return {k: v for k, v in {**ZOO, **KERNEL_ZOO, **TILE_ZOO}.items() if k not in REFUSED}


def cases() -> list[str]:
    return [f"{name}-{d}-{v}" for name in zoo() for d in DTYPES for v in ("plain", "save")]


def run_tile(results: dict) -> None:
    from tests._interpret import _run

    _run(zoo(), [(n, "leapfrog", d) for n in zoo() for d in DTYPES], results, form="tile", key="{name}-{dtype}-{v}")
