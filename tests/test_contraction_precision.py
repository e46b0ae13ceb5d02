"""A contraction in H (``q @ W`` in an MLP potential) runs at the full precision of its dtype on every executor.

On a GPU, XLA's default precision rounds the float32 operands of a matmul to a shorter mantissa, while the
fused kernels compute each product and sum exactly in float32. Before the fix the two executors of one float32
MLP program differed by 7.7e-5 after 200 steps (H200), and the guarded gradient's reversible rebuild, run on
kernel states, missed its check against them: every segment replayed (MLP 65k x 200: 14.9 ms instead of 7.2
ms), and the gradient differed from ``adjoint="checkpointed", backend="xla"`` by 3.4e-4 (4.2e-6 at full
precision). Now a contraction traced without a precision is lowered with ``Precision.HIGHEST``; an explicit
request (``precision=`` or ``jax_default_matmul_precision``) is kept, and then the program runs on XLA only,
since the kernels compute only at full precision.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tpjax
from tpjax import _compat


def _mlp(width, d=2, precision=None):
    rng = np.random.default_rng(0)
    W1 = jnp.asarray(rng.standard_normal((d, width)) / np.sqrt(d), jnp.float32)
    w2 = jnp.asarray(rng.standard_normal(width) / np.sqrt(width), jnp.float32)
    V = lambda q: jnp.dot(jnp.tanh(jnp.dot(q, W1, precision=precision)), w2, precision=precision)
    return lambda q, p: 0.5 * jnp.sum(p**2) + V(q) + 0.5 * jnp.sum(q**2)


def _run(H, steps=20, **kw):
    return jax.vmap(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=steps, **kw))


Q = jax.ShapeDtypeStruct((16, 2), jnp.float32)


def _dot_precisions(hlo: str) -> list[str]:
    lines = [ln for ln in hlo.splitlines() if "stablehlo.dot_general" in ln]
    assert lines, "the lowering holds no dot_general"
    return [ln.split("precision = ")[1].split("]")[0] + "]" if "precision = " in ln else "none" for ln in lines]


@pytest.mark.parametrize("platform", ["cpu", "cuda"])
def test_a_contraction_without_precision_is_lowered_at_full_precision(platform):
    f = _run(_mlp(8), backend="xla")
    if platform == "cpu":
        hlo = jax.jit(f).lower(Q, Q).as_text()
    else:
        hlo = _compat.lower_text_for_cuda(f, Q, Q)
    assert set(_dot_precisions(hlo)) == {"[HIGHEST, HIGHEST]"}


def test_an_explicit_precision_is_kept():
    hlo = jax.jit(_run(_mlp(8, precision=lax.Precision.DEFAULT), backend="xla")).lower(Q, Q).as_text()
    assert set(_dot_precisions(hlo)) == {"[DEFAULT, DEFAULT]"}


def test_float64_contractions_keep_their_traced_precision():
    q = jax.ShapeDtypeStruct((4, 2), jnp.float64)
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        W = jnp.asarray(rng.standard_normal((2, 3)))
        H = lambda q, p: 0.5 * jnp.sum(p**2) + jnp.sum(jnp.tanh(q @ W))
        hlo = jax.jit(_run(H, backend="xla")).lower(q, q).as_text()
    assert "[HIGHEST, HIGHEST]" not in _dot_precisions(hlo)  # float64 is computed in full at any precision


@pytest.mark.skipif(not _compat.has_jax_triton(), reason="jax-triton not installed")
def test_a_reduced_precision_request_runs_on_xla_not_on_the_kernel():
    """The fused kernel would silently compute above the precision asked for: the default call refuses it
    and lowers to the XLA loop; the full-precision program is the kernel (control)."""
    kernels = lambda H: _compat.lower_text_for_cuda(_run(H), Q, Q).count("triton_kernel_call")
    assert kernels(_mlp(8, precision=lax.Precision.DEFAULT)) == 0
    with jax.default_matmul_precision("tensorfloat32"):
        assert kernels(_mlp(8)) == 0
    with jax.default_matmul_precision("highest"):
        assert kernels(_mlp(8)) == 1
    assert kernels(_mlp(8)) == 1


def test_a_reduced_precision_request_is_refused_by_the_triton_backend_with_its_reason():
    if not _compat.has_jax_triton():
        pytest.skip("jax-triton not installed")
    H = _mlp(8, precision=lax.Precision.DEFAULT)
    with pytest.raises((NotImplementedError, ValueError), match="reduced precision"):
        _compat.lower_text_for_cuda(_run(H, backend="triton"), Q, Q)


@pytest.mark.gpu
def test_mlp_kernel_equals_xla_and_the_default_gradient_equals_checkpointed_on_the_gpu():
    """H200 before the fix: forward 7.7e-5 apart, gradient 3.4e-4 from checkpointed (65k members)."""
    if jax.default_backend() != "gpu":
        pytest.skip("needs a GPU")
    H = _mlp(64, d=4)
    rng = np.random.default_rng(0)
    q = jnp.asarray(0.5 + 0.02 * rng.standard_normal((4097, 4)), jnp.float32)
    p = jnp.asarray(0.02 * rng.standard_normal((4097, 4)), jnp.float32)
    rel = lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
    fused, xla = jax.jit(_run(H, 200))(q, p), jax.jit(_run(H, 200, backend="xla"))(q, p)
    assert max(rel(a, b) for a, b in zip(fused, xla, strict=True)) < 5e-6
    loss = lambda **kw: jax.jit(jax.grad(lambda q, p: jnp.sum(_run(H, 200, **kw)(q, p)[0] ** 2)))
    g, ref = loss()(q, p), loss(adjoint="checkpointed", backend="xla")(q, p)
    assert rel(g, ref) < 2e-5
