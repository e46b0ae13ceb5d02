"""Trust (issue 9): every H a user writes compiles, and no result or gradient is ever silently wrong.

One test (or a few) per item; each failed before the fix (the docstrings say how).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax

I3 = jnp.array([1.0, 2.0, 3.0])
L0 = jnp.array([1.0, 0.1, 0.5])


def rigid(L):
    return jnp.sum(L**2 / (2 * I3))


# ---- item 1: the rigid-body splitting proves H's form from its jaxpr, traced parameters included ----


def _rb(H, method="rigid_body"):
    return tpjax.integrate(H, L0, dt=0.01, steps=20, structure="so3", method=method)


@pytest.mark.parametrize(
    "extra",
    [lambda L, k: k * L[0] ** 4, lambda L, k: k * L[0] * L[1], lambda L, k: k * L[2]],
    ids=["quartic", "off_diagonal", "linear"],
)
def test_rigid_body_refuses_traced_terms_that_are_not_squares(extra):
    """Before: under jit/grad a traced k in k L0^4 or k L0 L1 was ignored (the k = 0 answer, d/dk = 0)."""
    run = lambda k: _rb(lambda L: rigid(L) + extra(L, k))
    for transform in (jax.jit, jax.grad):
        with pytest.raises(ValueError, match=r"`H` is not .*rigid_body.*implicit_midpoint"):
            transform(lambda k: jnp.sum(run(k)))(0.5)


def test_rigid_body_traced_moments_differentiate_and_negative_ones_are_nan():
    """Before: a negative traced moment was accepted under vmap and integrated as if physical."""
    run = lambda I: _rb(lambda L: jnp.sum(L**2 / (2 * I)))
    out = jax.vmap(run)(jnp.stack([I3, jnp.array([1.0, -2.0, 3.0])]))
    np.testing.assert_allclose(out[0], _rb(rigid), rtol=1e-6)
    assert bool(jnp.all(jnp.isnan(out[1])))
    loss = lambda I: jnp.sum(run(I) * jnp.arange(3.0))
    h = 1e-3
    fd = [(loss(I3 + h * e) - loss(I3 - h * e)) / (2 * h) for e in jnp.eye(3)]
    np.testing.assert_allclose(jax.grad(loss)(I3), fd, rtol=2e-2, atol=1e-4)
    # a traced quadratic-form parameter (diagonal matrix) is proven diagonal too
    mat = lambda s: _rb(lambda L: 0.5 * L @ jnp.diag(1.0 / (s * I3)) @ L)
    np.testing.assert_allclose(jax.jit(mat)(1.0), _rb(rigid), rtol=1e-6)


def test_rigid_body_refuses_concrete_non_squares_eagerly():
    with pytest.raises(ValueError, match="rigid_body"):
        _rb(lambda L: rigid(L) + 0.1 * L[0] * L[1])
    with pytest.raises(ValueError, match="positive moments"):
        _rb(lambda L: -rigid(L))


# ---- item 2: the so3 default is the exact splitting when it applies ----


def test_so3_default_is_rigid_body_when_h_is_a_free_rigid_body():
    """Before: the default was implicit_midpoint for every so3 H."""
    assert tpjax.compile(rigid, L0, structure="so3").method.name == "rigid_body"
    assert tpjax.compile(lambda L: rigid(L) + 0.1 * L[0] ** 4, L0, structure="so3").method.name == ("implicit_midpoint")
    names = []
    jax.jit(lambda I: names.append(tpjax.compile(lambda L: jnp.sum(L**2 / I), L0, structure="so3").method.name)
            or I)(I3)  # fmt: skip
    assert names == ["rigid_body"]  # traced moments: decided from the jaxpr alone
    np.testing.assert_array_equal(tpjax.integrate(rigid, L0, dt=0.01, steps=20, structure="so3"), _rb(rigid))
