"""The tile form of the fused kernel (``codegen.triton_tile``) on the CPU: which programs it writes, the
form the default path picks, what the launcher passes, and the reasons it gives when it refuses.

What the kernels compute is checked under Triton's interpreter (tests/test_interpreted_kernels.py, group
"tile") and on the GPU (tests/test_tile_kernels_gpu.py, ``-m gpu``).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tests._interpret_tile import REFUSED
from tests.hamiltonians import KERNEL_ZOO, TILE_ZOO
from tpjax import _compat
from tpjax.codegen import triton_source as TS
from tpjax.codegen.triton_tile import Table, padded, pow2


def _comp(name, dtype=jnp.float32):
    H, state = {**KERNEL_ZOO, **TILE_ZOO}[name]
    return tpjax.compile(H, state(dtype))


def _launch(src: str) -> dict:
    return {k: eval(v) for k, v in re.findall(r"^(TPJAX_\w+) = (.*)$", src, re.M)}  # noqa: S307 (our own text)


def test_padding_rounds_each_dimension_up_to_a_power_of_two():
    assert [pow2(n) for n in (1, 2, 3, 5, 64, 65, 129)] == [1, 2, 4, 8, 64, 128, 256]
    assert padded((130,)) == (256,) and padded((32, 32, 2)) == (32, 32, 2) and padded((6, 6, 2)) == (8, 8, 2)


def test_constant_table_pads_dedupes_and_offsets():
    t = Table()
    eye = np.eye(3)
    a, b, c = t.add(eye), t.add(np.ones((2, 2))), t.add(eye.copy())
    assert (a, b, c) == (0, 16, 0)  # (3, 3) padded to (4, 4): 16 values; the second eye is the first
    assert len(t.values) == 20
    assert np.array_equal(np.reshape(t.values[:16], (4, 4))[:3, :3], eye) and sum(t.values[:16]) == 3.0


@pytest.mark.parametrize("name", ["fpu_d128", "pendulum_chain_100", "lennard_jones_32"])
def test_programs_too_long_to_unroll_get_the_tile_form(name):
    comp = _comp(name)
    src = TS.generate(comp)
    assert "form=tile" in src.splitlines()[1] and ("tl.gather" in src or "tl.sum" in src)
    assert _launch(src)["TPJAX_BLOCK"] == 4 and _launch(src)["TPJAX_NUM_WARPS"] == 4  # the H200's best


def test_wide_systems_get_eight_warps():
    from tests.hamiltonians import lennard_jones_smooth

    z = jnp.zeros((64, 2), jnp.float32)  # a 64 x 64 x 2 distance tensor: 8192 elements per system
    launch = _launch(TS.generate(tpjax.compile(lennard_jones_smooth, (z, z))))
    assert launch["TPJAX_BLOCK"] == 4 and launch["TPJAX_NUM_WARPS"] == 8


def test_the_state_budget_sends_d_64_to_the_tile_form_and_keeps_d_48_unrolled():
    """The unrolled FPU chain of d = 64 spilled (23.4 ms against the XLA loop's 5.5 on the H200)."""
    from tests.hamiltonians import fpu

    for d, form in ((48, "unrolled"), (64, "tile")):
        z = jnp.zeros((d,), jnp.float32)
        src = TS.generate(tpjax.compile(fpu, (z, z)))
        assert ("form=tile" in src.splitlines()[1]) == (form == "tile"), d
    z = jnp.zeros((64,), jnp.float32)
    assert "form=tile" not in TS.generate(tpjax.compile(fpu, (z, z)), form="unrolled")  # still writable


def test_small_programs_stay_unrolled_by_default():
    comp = _comp("lennard_jones")  # 4 atoms: the unrolled kernel is short and the fastest form
    assert "form=tile" not in TS.generate(comp) and "form=tile" in TS.generate(comp, form="tile")
    assert _launch(TS.generate(comp, form="tile"))["TPJAX_BLOCK"] == 32  # 1024 values per program: [32, 4, 4, 2]


def test_the_distance_matrix_kernel_reads_the_eye_from_its_table():
    src = TS.generate(_comp("lennard_jones_32"))
    table = np.asarray(_launch(src)["TPJAX_TABLE"])
    eye = table[:1024].reshape(32, 32)
    assert np.array_equal(eye, np.eye(32))  # r2 + eye: the diagonal's guard against 0 / 0
    assert "tab_ptr" in src.split("def fused_step_kernel(")[1].split(")")[0]


def test_fpu_chain_shifts_are_gathers_with_masks():
    src = TS.generate(_comp("fpu_d128"))
    loop = src.split("for _ in range(n_steps):")[1]
    assert loop.count("tl.gather(") == 4  # pad lo=1, slice start=1 (twice), pad lo=1 of the force
    assert "(ix1_0_256 >= 1) & (ix1_0_256 < 129)" in loop  # the zero ends of the padded chain
    assert _launch(src)["TPJAX_TABLE"] is None  # nothing non-uniform: no table operand
    assert "tab_ptr" not in src


@pytest.mark.parametrize("name", REFUSED)
def test_probed_ops_are_refused_by_the_tile_form_with_the_op_named(name):
    with pytest.raises(NotImplementedError, match=r"tile form.*OPAQUE (gather|dot_general)"):
        TS.generate(_comp(name), form="tile")


def test_a_program_neither_form_writes_gives_both_reasons():
    from tpjax.executors.choice import kernel_for

    z = jnp.zeros((256,), jnp.float32)
    comp = tpjax.compile(lambda q, p: 0.5 * jnp.sum(p**2) + jnp.sum(jnp.cumsum(q) ** 2), (z, z))
    executor, why = kernel_for(comp, fast_math=False)
    assert executor is None
    assert "the tile form:" in why and "OPAQUE cumsum" in why and "XLA path" in why


def test_an_unknown_form_is_refused():
    with pytest.raises(ValueError, match="form='rolled'"):
        TS.generate_program(_comp("fpu_d128").step, form="rolled")


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")
@pytest.mark.parametrize("name", ["fpu_d128", "lennard_jones_32"])
def test_default_call_cross_lowers_to_the_tile_kernel_with_its_table(name):
    from tests.sharding_cuda import kernel_operand_sizes

    H, state = TILE_ZOO[name]
    q0, p0 = state(jnp.float32)
    comp = tpjax.compile(H, (q0, p0))
    n = 64
    q = jax.ShapeDtypeStruct((n, *q0.shape), jnp.float32)
    f = jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=10))  # the default call
    text = _compat.lower_text_for_cuda(f, q, q)
    assert text.count("triton_kernel_call") == 1
    table = _launch(TS.generate(comp, form="tile"))["TPJAX_TABLE"]
    # the kernel's array operands: q, p and the constant table when the program has one (dt is a scalar)
    assert sorted(kernel_operand_sizes(text)) == sorted([n * q0.size] * 2 + ([len(table)] if table else []))
