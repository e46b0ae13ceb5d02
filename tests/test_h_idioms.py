"""A wide table of idioms users write inside H: each one integrates like a hand-written scan, compiles to a
listing that parses back, and is differentiable through ``tpjax.integrate`` w.r.t. a parameter of H.

The oracle is written here: a ``lax.scan`` of velocity-Verlet (separable H) or implicit midpoint (fixed-point
iterations, any H) with ``jax.grad`` of the same H. Unsupported idioms are listed in ``UNSUPPORTED`` with
the error they must raise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tpjax
from tpjax.ir.printer import parse, to_text

jax.config.update("jax_enable_x64", True)

K = 1.3  # the parameter of H that jax.grad differentiates
DT, STEPS = 0.05, 4
M = jnp.array([[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.0]])  # symmetric positive definite
IDX = jnp.array([0, 2])
_calls = []


def T(p):
    return 0.5 * jnp.sum(p**2)


@jax.custom_jvp
def soft_abs(x):
    return jnp.sqrt(x * x + 0.1)


@soft_abs.defjvp
def _soft_abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = soft_abs(x)
    return y, x / y * t


def _switch(q, k):
    i = jnp.clip(jnp.floor(q[0] * 4).astype(jnp.int32) + 1, 0, 2)  # q[0]=0.3 -> branch 2
    return lax.switch(i, [lambda x: jnp.sum(x**2), lambda x: k * jnp.sum(x**4), lambda x: k * jnp.sum(jnp.cos(x))], q)


def _scan_v(q, k):
    def body(c, x):
        c = c + k * jnp.sin(c * x)
        return c, c**2

    _, ys = lax.scan(body, 0.5, q)
    return jnp.sum(ys)


def _safe_norm(q):
    r2 = jnp.sum(q**2)
    return jnp.where(r2 > 0, jnp.sqrt(jnp.where(r2 > 0, r2, 1.0)), 0.0)


def _callback_v(q, k):
    jax.debug.callback(lambda x: _calls.append(np.asarray(x)), q)
    return k * jnp.sum(q**2)


#: name -> V(q, k) of a separable H = T(p) + V(q, k), integrated with leapfrog.
SEPARABLE = {
    # activations
    "relu": lambda q, k: k * jnp.sum(jax.nn.relu(q) ** 2) + 0.5 * jnp.sum(q**2),
    "softplus": lambda q, k: k * jnp.sum(jax.nn.softplus(q)),
    "gelu_tanh": lambda q, k: k * jnp.sum(jax.nn.gelu(q, approximate=True)),
    "gelu_erf": lambda q, k: k * jnp.sum(jax.nn.gelu(q, approximate=False)),
    "silu": lambda q, k: k * jnp.sum(jax.nn.silu(q)),
    "sigmoid": lambda q, k: k * jnp.sum(jax.nn.sigmoid(2 * q)),
    "elu": lambda q, k: k * jnp.sum(jax.nn.elu(q) ** 2),
    "leaky_relu": lambda q, k: k * jnp.sum(jax.nn.leaky_relu(q, 0.1) ** 2),
    "tanh_log1p_expm1": lambda q, k: k * jnp.sum(jnp.tanh(q) + jnp.log1p(q**2) + jnp.expm1(0.1 * q)),
    "erf_sinh_cosh_arctan": lambda q, k: (
        k * jnp.sum(jax.scipy.special.erf(q) + jnp.sinh(q) * jnp.cosh(q) + jnp.arctan(q) + jnp.arctan2(q, 2.0))
    ),  # fmt: skip
    # masks and cutoffs
    "where_positive": lambda q, k: jnp.sum(jnp.where(q > 0, k * q**2, 2 * q**2)),
    "md_cutoff": lambda q, k: jnp.sum(jnp.where(q**2 < 0.1, k * (q**2 - 0.1) ** 2, 0.0)),
    "safe_norm": lambda q, k: k * _safe_norm(q),
    "lax_select": lambda q, k: jnp.sum(lax.select(q < 0.4, k * q**2, jnp.cos(q))),
    "clip": lambda q, k: k * jnp.sum(jnp.clip(q, -0.25, 0.25) ** 2) + jnp.sum(q**2),
    "maximum_minimum": lambda q, k: k * jnp.sum(jnp.maximum(q, 0.1 * q) ** 2 + jnp.minimum(q, 0.2) ** 2),
    "abs_sign": lambda q, k: k * jnp.sum(jnp.abs(q) ** 3 + jnp.sign(q) * q**2),
    "bool_intermediate": lambda q, k: jnp.sum(jnp.where((q > 0) & (q < 0.4), k * q**2, q**4)),
    "int_intermediate": lambda q, k: (jnp.sum(q > 0) + 1) * k * jnp.sum(q**2),
    # control flow
    "cond": lambda q, k: lax.cond(q[0] > 0, lambda x: k * jnp.sum(x**2), lambda x: jnp.sum(x**4), q),
    "switch": _switch,
    "fori_loop": lambda q, k: lax.fori_loop(0, 3, lambda i, a: a + k * jnp.sum(jnp.cos((i + 1) * q)), 0.0),
    "scan": _scan_v,
    # linear algebra
    "dot": lambda q, k: k * jnp.dot(q, M @ q),
    "matmul": lambda q, k: k * q @ M @ q,
    "einsum": lambda q, k: k * jnp.einsum("i,ij,j->", q, M, q),
    "norm": lambda q, k: k * jnp.linalg.norm(q + 1.0),
    "solve_spd": lambda q, k: q @ jnp.linalg.solve(M + k * jnp.eye(3), q),
    "inv": lambda q, k: q @ jnp.linalg.inv(M + k * jnp.eye(3)) @ q,
    "det": lambda q, k: k * jnp.log(jnp.linalg.det(M + jnp.outer(q, q))),
    # indexing and layout
    "int_array_index": lambda q, k: k * jnp.sum(q[jnp.array([0, 2])] ** 2) + jnp.sum(q**2),
    "at_set": lambda q, k: k * jnp.sum(q.at[1].set(0.0) ** 2) + jnp.sum(q**4),
    "take": lambda q, k: k * jnp.sum(jnp.take(q, jnp.array([2, 0, 0])) ** 2) + jnp.sum(q**2),
    "dynamic_slice": lambda q, k: k * jnp.sum(lax.dynamic_slice(q, (1,), (2,)) ** 2) + jnp.sum(q**2),
    "gather_2d": lambda q, k: k * jnp.sum(jnp.outer(q, q)[IDX, jnp.array([1, 2])]) + jnp.sum(q**2),
    "reshape_transpose_broadcast": lambda q, k: k * jnp.sum((q.reshape(3, 1) * q.reshape(1, 3)).T ** 2 + q[None, :]),
    "tril_triu": lambda q, k: k * jnp.sum(jnp.tril(jnp.outer(q, q))) + jnp.sum(jnp.triu(jnp.outer(q, q), 1) ** 2),
    "eye_iota": lambda q, k: k * jnp.sum(jnp.eye(3) * jnp.outer(q, q)) + jnp.sum(jnp.arange(3) * q**2),
    "concat_stack": lambda q, k: k * jnp.sum(jnp.concatenate([q, 2 * q]) ** 2) + jnp.sum(jnp.stack([q, q**2])),
    # reductions
    "logsumexp": lambda q, k: k * jax.nn.logsumexp(q),
    "max": lambda q, k: k * jnp.max(q**2) + jnp.sum(q**2),
    "mean": lambda q, k: k * jnp.mean(jnp.cos(q)),
    "prod": lambda q, k: k * jnp.prod(q + 2.0),
    # rounding
    "mod": lambda q, k: k * jnp.sum(jnp.mod(q, 0.7) ** 2),
    "floor": lambda q, k: k * jnp.sum((q - jnp.floor(q)) ** 2),
    "round": lambda q, k: k * jnp.sum(q**2 * (1 + jnp.round(3 * q))),
    # custom derivatives and effects
    "custom_jvp": lambda q, k: k * jnp.sum(soft_abs(q)),
    "debug_print": lambda q, k: (jax.debug.print("q = {q}", q=q), k * jnp.sum(q**2))[1],
    "debug_callback": _callback_v,
}

#: name -> a non-separable H(q, p, k), integrated with implicit midpoint.
NONSEPARABLE = {
    "where_qp": lambda q, p, k: T(p) + jnp.sum(jnp.where(q * p > 0, k * q**2 * p**2, q**2)),
    "relu_qp": lambda q, p, k: T(p) + k * jnp.sum(jax.nn.relu(q + p) ** 2),
    "cond_on_p": lambda q, p, k: T(p) + lax.cond(p[1] > 0, lambda: k * jnp.sum(q**2), lambda: jnp.sum(q**4)),
    "int_index_qp": lambda q, p, k: T(p) + k * jnp.sum(q[IDX] * p[IDX]) + jnp.sum(q**2),
    "debug_print_qp": lambda q, p, k: (jax.debug.print("qp"), T(p) + k * jnp.sum(jnp.sin(q * p)) + jnp.sum(q**2))[1],
}

#: idioms tpjax cannot support, with the error they must raise (a clear one, naming what to do).
UNSUPPORTED = {
    "while_loop": (
        lambda q, k: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] + k * jnp.sum(q**2)), (0, 0.0))[1],
        "Reverse-mode differentiation does not work for lax.while_loop",  # dH/dq needs it; use scan / fori_loop
    ),
}


def _state(dtype=jnp.float64):
    return jnp.array([0.3, -0.2, 0.5], dtype), jnp.array([0.1, 0.4, -0.3], dtype)


def leapfrog(H, q, p, dt, n):
    dq, dp = jax.grad(H, 0), jax.grad(H, 1)

    def step(s, _):
        q, p = s
        p = p - 0.5 * dt * dq(q, p)
        q = q + dt * dp(q, p)
        return (q, p - 0.5 * dt * dq(q, p)), None

    return lax.scan(step, (q, p), None, length=n)[0]


def implicit_midpoint(H, q, p, dt, n, iters=40):
    dq, dp = jax.grad(H, 0), jax.grad(H, 1)

    def step(s, _):
        q0, p0 = s

        def fix(z, _):
            qm, pm = (q0 + z[0]) / 2, (p0 + z[1]) / 2
            return (q0 + dt * dp(qm, pm), p0 - dt * dq(qm, pm)), None

        return lax.scan(fix, (q0, p0), None, length=iters)[0], None

    return lax.scan(step, (q, p), None, length=n)[0]


def _rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-300))


def _check(H, method, reference, dtype=jnp.float64, tol=1e-12, steps=STEPS):
    """tpjax.integrate == the reference scan (final state and d loss / d k in one pass), and the listing parses."""
    q0, p0 = _state(dtype)

    def loss(integrate):
        def f(k):
            q, p = integrate(lambda q, p: H(q, p, k))
            return jnp.sum(q**2) + jnp.sum(jnp.sin(p)), (q, p)

        return jax.value_and_grad(f, has_aux=True)(K)

    (_, (q1, p1)), g = loss(lambda h: tpjax.integrate(h, (q0, p0), dt=DT, steps=steps, method=method))
    (_, (qr, pr)), gr = loss(lambda h: reference(h, q0, p0, DT, steps))
    assert q1.dtype == dtype and _rel(q1, qr) < tol and _rel(p1, pr) < tol, (q1, qr, p1, pr)
    assert np.isfinite(float(g)) and abs(float(g) - float(gr)) <= max(1e3 * tol, 1e-9) * max(abs(float(gr)), 1e-3)

    prog = tpjax.compile(lambda q, p: H(q, p, K), (q0, p0), method=method).step
    assert parse(to_text(prog), opaque=prog.opaque) == prog


@pytest.mark.parametrize("name", sorted(SEPARABLE))
def test_separable_idiom(name):
    V = SEPARABLE[name]
    _check(lambda q, p, k: T(p) + V(q, k), "leapfrog", leapfrog)


@pytest.mark.parametrize("name", sorted(NONSEPARABLE))
def test_nonseparable_idiom(name):
    _check(NONSEPARABLE[name], "implicit_midpoint", implicit_midpoint, steps=2)


@pytest.mark.parametrize("name", ["relu", "md_cutoff", "int_array_index", "cond", "debug_print"])
def test_idiom_float32(name):
    V = SEPARABLE[name]
    _check(lambda q, p, k: T(p) + V(q, k), "leapfrog", leapfrog, dtype=jnp.float32, tol=1e-5)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_idiom_raises_clearly(name):
    V, message = UNSUPPORTED[name]
    with pytest.raises(Exception, match=message):
        tpjax.integrate(lambda q, p: T(p) + V(q, K), _state(), dt=DT, steps=STEPS, method="leapfrog")


def test_debug_callback_runs_and_is_kept_in_the_listing():
    _calls.clear()
    H = lambda q, p: T(p) + _callback_v(q, K)  # noqa: E731
    prog = tpjax.compile(H, _state(), method="leapfrog").step
    assert "debug_callback" in to_text(prog) and "effect=True" in to_text(prog)
    tpjax.integrate(H, _state(), dt=DT, steps=STEPS, method="leapfrog")
    assert len(_calls) >= STEPS and np.allclose(_calls[0], _state()[0])


def test_ordered_callback_inside_jit():
    """An ordered effect in H, under jax.jit: the loop carries the effect token and calls run in order."""
    seen = []

    def H(q, p):
        jax.debug.callback(lambda x: seen.append(float(x)), q[0], ordered=True)
        return T(p) + jnp.sum(q**2)

    run = jax.jit(lambda s: tpjax.integrate(H, s, dt=DT, steps=STEPS, method="leapfrog", adjoint="direct"))
    q1, _ = run(_state())
    qr, _ = leapfrog(lambda q, p: T(p) + jnp.sum(q**2), *_state(), DT, STEPS)
    assert _rel(q1, qr) < 1e-12
    assert len(seen) >= STEPS and seen[0] == pytest.approx(0.3)
