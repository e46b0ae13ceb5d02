"""The separability check (tpjax.frontend.dependency): separable H written on concatenations, stacks and index
expressions are accepted (and leapfrog matches a hand-written scan); non-separable H are always refused."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import tpjax
from tpjax.frontend import dependency
from tpjax.frontend.trace import trace
from tpjax.structures import resolve

jax.config.update("jax_enable_x64", True)

W = jnp.array([[1.0, 0.2, 0.0], [0.2, 2.0, 0.1], [0.0, 0.1, 1.5]])


def _z(q, p):
    return jnp.concatenate([q, p])


#: separable H = T(p) + V(q) written so that a coarse reachability test sees p flowing into dH/dq.
SEPARABLE = {
    "concat_squares": lambda q, p: jnp.sum(jnp.concatenate([p, q]) ** 2),
    "concat_windows": lambda q, p: 0.5 * jnp.sum(_z(q, p)[3:] ** 2) + jnp.sum(jnp.cos(_z(q, p)[:3])),
    "stack_rows": lambda q, p: 0.5 * jnp.sum(jnp.stack([p, q])[0] ** 2) + jnp.sum(jnp.stack([p, q])[1] ** 4),
    "index_expressions": lambda q, p: 0.5 * (p[0] ** 2 + p[1] ** 2 + p[2] ** 2) + q[0] * q[1] + jnp.sin(q[2]),
    "int_array_index": lambda q, p: 0.5 * jnp.sum(_z(q, p)[jnp.array([3, 4, 5])] ** 2) + jnp.sum(q**4),
    "quadratic_form_blocks": lambda q, p: 0.5 * _z(q, p)[3:] @ W @ _z(q, p)[3:] + 0.5 * _z(q, p)[:3] @ _z(q, p)[:3],
    "pad_then_slice": lambda q, p: jnp.sum(jnp.pad(p, (0, 3)) ** 2 + jnp.pad(q, (3, 0)) ** 4),
    "dynamic_slice": lambda q, p: 0.5 * jnp.sum(lax.dynamic_slice(_z(q, p), (3,), (3,)) ** 2) + jnp.sum(q**2),
    "reshape_blocks": lambda q, p: (
        jnp.sum(_z(q, p).reshape(2, 3)[1] ** 2) / 2 + jnp.sum(jnp.exp(_z(q, p).reshape(2, 3)[0]))
    ),
    "where_on_q": lambda q, p: 0.5 * jnp.sum(p**2) + jnp.sum(jnp.where(_z(q, p)[:3] > 0, q**2, 0.5 * q**2)),
}

#: non-separable H, including ones that look separable block by block.
NONSEPARABLE = {
    "concat_squared_sum_squared": lambda q, p: jnp.sum(jnp.concatenate([p, q]) ** 2) ** 2,
    "q0_p1": lambda q, p: q[0] * p[1] + jnp.sum(q**2 + p**2),
    "slice_products": lambda q, p: jnp.sum(_z(q, p)[2:4] ** 2) ** 2,
    "window_mix": lambda q, p: jnp.sum(_z(q, p)[:3] * _z(q, p)[3:]),
    "rolled": lambda q, p: jnp.sum(_z(q, p) * jnp.roll(_z(q, p), 3)),
    "reversed": lambda q, p: jnp.sum(_z(q, p) * _z(q, p)[::-1]),
    "full_quadratic_form": lambda q, p: _z(q, p) @ jnp.ones((6, 6)) @ _z(q, p),
    "norm_of_concat": lambda q, p: jnp.linalg.norm(_z(q, p)),
    "dot_blocks": lambda q, p: jnp.dot(q, p),
    "where_mixed": lambda q, p: jnp.sum(jnp.where(q > 0, p**2, q**2)),
    "gather_mixed": lambda q, p: jnp.sum(_z(q, p)[jnp.array([0, 4])] ** 2) ** 2,
    "cond_on_p": lambda q, p: lax.cond(p[0] > 0, lambda: jnp.sum(q**2), lambda: jnp.sum(q**4)) + jnp.sum(p**2),
    "dynamic_index_by_p": lambda q, p: q[jnp.argmax(p)] ** 2 + jnp.sum(p**2),
    "pad_overlap": lambda q, p: jnp.sum((jnp.pad(p, (0, 2)) * jnp.pad(q, (2, 0))) ** 2),
}


def _state():
    return jnp.array([0.3, -0.2, 0.5]), jnp.array([0.1, 0.4, -0.3])


def defect(H):
    """max |H(q1, p1) + H(q2, p2) - H(q1, p2) - H(q2, p1)| over sample pairs: zero iff H = T(p) + V(q) there."""
    key = jax.random.PRNGKey(0)
    zs = jax.random.normal(key, (6, 2, 3))
    return max(abs(float(H(a[0], a[1]) + H(b[0], b[1]) - H(a[0], b[1]) - H(b[0], a[1]))) for a in zs for b in zs)


def leapfrog(H, q, p, dt, n):
    dq, dp = jax.grad(H, 0), jax.grad(H, 1)

    def step(s, _):
        q, p = s
        p = p - 0.5 * dt * dq(q, p)
        q = q + dt * dp(q, p)
        return (q, p - 0.5 * dt * dq(q, p)), None

    return lax.scan(step, (q, p), None, length=n)[0]


@pytest.mark.parametrize("name", sorted(SEPARABLE))
def test_separable_accepted_and_integrates(name):
    H = SEPARABLE[name]
    q0, p0 = _state()
    assert defect(H) < 1e-9  # it is truly separable
    q1, p1 = tpjax.integrate(H, (q0, p0), dt=0.05, steps=5, method="leapfrog")
    qr, pr = leapfrog(H, q0, p0, 0.05, 5)
    assert jnp.allclose(q1, qr, rtol=1e-12, atol=1e-14) and jnp.allclose(p1, pr, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(NONSEPARABLE))
def test_nonseparable_refused(name):
    H = NONSEPARABLE[name]
    q0, p0 = _state()
    assert defect(H) > 1e-6  # it is truly non-separable, so refusing is right
    with pytest.raises(ValueError, match="needs a separable H"):
        tpjax.integrate(H, (q0, p0), dt=0.05, steps=2, method="leapfrog")
    tpjax.integrate(H, (q0, p0), dt=0.05, steps=2, method="implicit_midpoint")  # the advised method runs


def test_dependency_is_elementwise_exact_on_windows():
    q0, p0 = _state()
    tr = trace(lambda q, p: jnp.sum(jnp.concatenate([p, q]) ** 2), (q0, p0), resolve("canonical"))
    assert not tr.depends(0, 1) and not tr.depends(1, 0)  # the concatenation's windows do not mix
    assert tr.depends(0, 0) and tr.depends(1, 1)
    tr = trace(lambda q, p: jnp.sum(jnp.concatenate([p, q]) ** 2) ** 2, (q0, p0), resolve("canonical"))
    assert tr.depends(0, 1) and tr.depends(1, 0)


def test_unknown_primitive_is_conservative():
    def f(x, y):
        return jnp.sort(jnp.concatenate([x, y]))[:2]  # sort: not analysed, so it mixes everything

    closed = jax.make_jaxpr(f)(jnp.ones(2), jnp.ones(2))
    assert dependency.depends(closed, 0) and dependency.depends(closed, 1)
    closed = jax.make_jaxpr(lambda x, y: jnp.concatenate([x, y])[:2])(jnp.ones(2), jnp.ones(2))
    assert dependency.depends(closed, 0) and not dependency.depends(closed, 1)


def test_check_runs_under_jit_and_grad():
    """The analysis evaluates masks eagerly even when H's constants are tracers (jit, grad w.r.t. them)."""
    q0, p0 = _state()

    def final_q(k):
        H = lambda q, p: k * jnp.sum(jnp.concatenate([p, q]) ** 2)  # noqa: E731
        return tpjax.integrate(H, (q0, p0), dt=0.05, steps=3, method="leapfrog")[0]

    qj = jax.jit(final_q)(1.5)
    qr = leapfrog(lambda q, p: 1.5 * jnp.sum(jnp.concatenate([p, q]) ** 2), q0, p0, 0.05, 3)[0]
    assert jnp.allclose(qj, qr, rtol=1e-12)
    g = jax.grad(lambda k: jnp.sum(final_q(k)))(1.5)
    gr = jax.grad(
        lambda k: jnp.sum(leapfrog(lambda q, p: k * jnp.sum(jnp.concatenate([p, q]) ** 2), q0, p0, 0.05, 3)[0])
    )(1.5)
    assert float(g) == pytest.approx(float(gr), rel=1e-10)
