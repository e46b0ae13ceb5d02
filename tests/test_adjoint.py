"""tpjax.adjoint.solve: gradients (reverse and forward mode), memory, vmap/jit, argument checks."""

from functools import cache, partial

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tpjax.adjoint import solve  # noqa: E402

# ---------------------------------------------------------------- systems (step functions)


def leapfrog(V):
    """Kick-drift-kick for H = |p|^2/2 + V(params, q); symmetric, so step(-dt) undoes step(dt)."""
    grad_V = jax.grad(V, argnums=1)

    def step(params, z, dt):
        q, p = z
        p = p - 0.5 * dt * grad_V(params, q)
        q = q + dt * p
        return q, p - 0.5 * dt * grad_V(params, q)

    return step


def symplectic_euler(V):
    """q1 = q + dt p, p1 = p - dt dV/dq(q1): symplectic, not symmetric (not reversible with -dt)."""
    grad_V = jax.grad(V, argnums=1)

    def step(params, z, dt):
        q, p = z
        q = q + dt * p
        return q, p - dt * grad_V(params, q)

    return step


def V_pendulum(params, q):  # H = p^2/2 - k cos q, k = g / length
    return -jnp.sum(params["k"] * jnp.cos(q))


def V_chain(params, q):  # harmonic chain plus a small MLP potential: the params pytree is the MLP
    springs = 0.5 * params["k"] * jnp.sum(jnp.diff(q) ** 2) + 0.5 * jnp.sum(q**2)
    h = jnp.tanh(q @ params["mlp"]["w1"] + params["mlp"]["b1"])
    return springs + 0.1 * jnp.sum(h * params["mlp"]["w2"])


def V_henon_heiles(params, q):
    x, y = q[..., 0], q[..., 1]
    return jnp.sum(0.5 * (x**2 + y**2) + params["lam"] * (x**2 * y - y**3 / 3))


def pendulum_case(n=3):
    z0 = (jnp.linspace(0.2, 1.4, n), jnp.linspace(-0.3, 0.5, n))
    return leapfrog(V_pendulum), z0, {"k": jnp.asarray(1.3)}


def chain_case(n=6, hidden=4):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {
        "k": jnp.asarray(2.0),
        "mlp": {
            "w1": jax.random.normal(k1, (n, hidden)),
            "b1": jax.random.normal(k2, (hidden,)),
            "w2": jax.random.normal(k3, (hidden,)),
        },
    }
    z0 = (jnp.sin(jnp.arange(n, dtype=float)), jnp.zeros(n).at[0].set(0.5))
    return leapfrog(V_chain), z0, params


def euler_case():
    step, z0, params = pendulum_case()
    return symplectic_euler(V_pendulum), z0, params


CASES = {"pendulum": cache(pendulum_case), "chain": cache(chain_case), "symplectic_euler": cache(euler_case)}
STEPS, DT = 120, 0.05


@cache
def make_loss(step, adjoint, save_every=None, steps=STEPS, **kw):
    """A jitted scalar loss of the final state (or of all saved states); cached so tests share compiles."""

    def loss(z0, params, dt):
        out = solve(step, z0, dt, params, steps=steps, save_every=save_every, adjoint=adjoint, **kw)
        if save_every is None:
            q, p = out
            return jnp.sum(q**2) + jnp.sum(jnp.sin(p))
        (q, p), (qs, ps) = out
        w = jnp.arange(1, qs.shape[0] + 1, dtype=qs.dtype)[:, None]
        return jnp.sum(q * p) + jnp.sum(w * qs**2) + jnp.sum(jnp.cos(ps))

    return jax.jit(loss)


@cache
def make_grad(step, adjoint, save_every=None, steps=STEPS, **kw):
    return jax.jit(jax.grad(make_loss(step, adjoint, save_every, steps, **kw), argnums=(0, 1, 2)))


def rel_err(a, b):
    """Max over leaves of max|a - b| / max|b| (norm-wise relative error)."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.subtract(x, y))) / np.max(np.abs(y))) for x, y in pairs)


@partial(jax.jit, static_argnums=(0, 2))
def directional_fd(loss, args, argnum, direction, h):
    """Central difference of loss(*args) along `direction` in argument `argnum`."""

    def shifted(s):
        a = list(args)
        a[argnum] = jax.tree.map(lambda x, v: x + s * h * v, a[argnum], direction)
        return loss(*a)

    return (shifted(1.0) - shifted(-1.0)) / (2 * h)


def random_like(tree, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.standard_normal(np.shape(x)), tree)


def dot(a, b):
    return sum(
        np.vdot(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


GRAD_CASES = [
    (case, adjoint)
    for case in CASES
    for adjoint in ("reversible", "checkpointed", "direct")
    if not (case == "symplectic_euler" and adjoint == "reversible")
]


@pytest.mark.parametrize("save_every", [None, 20])
@pytest.mark.parametrize("case,adjoint", GRAD_CASES)
def test_grad_matches_fd_and_direct(case, adjoint, save_every):
    step, z0, params = CASES[case]()
    args = (z0, params, jnp.asarray(DT))
    grad = make_grad(step, adjoint, save_every)(*args)
    ref = make_grad(step, "direct", save_every)(*args)
    assert rel_err(grad, ref) < 1e-10
    loss = make_loss(step, "direct", save_every)
    for argnum in range(3):
        v = random_like(args[argnum], seed=argnum)
        fd = directional_fd(loss, args, argnum, v, h=1e-5 if argnum < 2 else 1e-6)
        np.testing.assert_allclose(dot(grad[argnum], v), fd, rtol=1e-6)


def test_checkpoints_count_and_nondividing_segments():
    step, z0, params = CASES["chain"]()
    args = (z0, params, jnp.asarray(DT))
    ref = make_grad(step, "direct", steps=101)(*args)
    for checkpoints in (1, 7, 500):
        assert rel_err(make_grad(step, "checkpointed", steps=101, checkpoints=checkpoints)(*args), ref) < 1e-10


# ---------------------------------------------------------------- reanchor


@pytest.mark.parametrize("save_every,reanchor", [(None, 7), (None, 120), (20, 7), (40, 30), (20, 1)])
def test_reanchor_same_gradient(save_every, reanchor):
    step, z0, params = CASES["pendulum"]()
    args = (z0, params, jnp.asarray(DT))
    ref = make_grad(step, "direct", save_every)(*args)
    assert rel_err(make_grad(step, "reversible", save_every, reanchor=reanchor)(*args), ref) < 1e-10


def test_reanchor_bounds_roundoff_in_chaotic_system():
    """Henon-Heiles at E = 0.14 (chaotic sea), 10^4 leapfrog steps: the backward reconstruction of the
    plain reversible adjoint loses all accuracy; restarting it from anchors every 100 steps does not."""
    step = leapfrog(V_henon_heiles)
    q0 = jnp.array([[0.0, 0.1], [0.0, -0.1]])
    v = 0.5 * jnp.sum(q0**2, -1) + q0[:, 0] ** 2 * q0[:, 1] - q0[:, 1] ** 3 / 3
    p0 = jnp.stack([jnp.sqrt(2 * (0.14 - v)), jnp.zeros(2)], -1)
    args = ((q0, p0), {"lam": jnp.asarray(1.0)}, jnp.asarray(0.05))

    def grad(adjoint, **kw):
        loss = lambda z, p, dt: jnp.sum(solve(step, z, dt, p, steps=10_000, adjoint=adjoint, **kw)[0] ** 2)
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)

    ref = grad("direct")
    err_plain, err_anchor = rel_err(grad("reversible"), ref), rel_err(grad("reversible", reanchor=100), ref)
    print(f"\nHenon-Heiles 1e4 steps: reversible rel. error {err_plain:.2e}, with reanchor=100 {err_anchor:.2e}")
    assert err_anchor < 1e-9
    assert err_plain > 1e3 * err_anchor


# ---------------------------------------------------------------- memory


def grad_of_pendulums(adjoint, steps, n=1024):
    step = leapfrog(V_pendulum)
    loss = lambda z, p, dt: jnp.sum(solve(step, z, dt, p, steps=steps, adjoint=adjoint)[0] ** 2)
    args = ((jnp.linspace(0.0, 1.0, n), jnp.zeros(n)), {"k": jnp.asarray(1.0)}, jnp.asarray(0.01))
    return jax.jit(jax.grad(loss, argnums=(0, 1, 2))), args


def peak_bytes(adjoint, steps):
    grad, args = grad_of_pendulums(adjoint, steps)
    m = grad.lower(*args).compile().memory_analysis()
    return m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes


def test_grad_jaxpr_has_no_per_step_residuals():
    for adjoint, stacked in (("reversible", False), ("direct", True)):
        grad, args = grad_of_pendulums(adjoint, 10_000)
        assert ("[10000,1024]" in str(jax.make_jaxpr(grad)(*args))) == stacked


def test_memory_reversible_flat_direct_grows():
    rev = peak_bytes("reversible", 100), peak_bytes("reversible", 10_000)
    direct = peak_bytes("direct", 100), peak_bytes("direct", 10_000)
    ckpt = peak_bytes("checkpointed", 100), peak_bytes("checkpointed", 10_000)
    print(f"\npeak bytes (100, 1e4 steps): reversible {rev}, checkpointed {ckpt}, direct {direct}")
    assert rev[1] <= 1.2 * rev[0]
    assert direct[1] > 5 * direct[0]
    assert ckpt[1] < direct[1] / 20  # O(sqrt(steps))


def test_memory_checkpointed_saving_run_keeps_block_starts_only():
    """A checkpointed run saving every 100 of 10^4 steps: each block re-runs in the backward pass from its
    start, so the gradient holds the 100 saved states and their cotangents, not every block's inner
    checkpoints as well (10 more states per block: 1100 states measured when the blocks are not wrapped)."""
    step, n = leapfrog(V_pendulum), 1024

    def loss(z, p, dt):
        zT, saved = solve(step, z, dt, p, steps=10_000, save_every=100, adjoint="checkpointed")
        return jnp.sum(saved[0] ** 2) + jnp.sum(zT[1])

    args = ((jnp.linspace(0.0, 1.0, n), jnp.zeros(n)), {"k": jnp.asarray(1.0)}, jnp.asarray(0.01))
    temp = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(*args).compile().memory_analysis().temp_size_in_bytes
    states = temp / (2 * n * 8)
    assert 100 <= states < 300, states  # 200 measured: the saved states and their cotangents


# ---------------------------------------------------------------- forward mode


@pytest.mark.parametrize("save_every", [None, 20])
@pytest.mark.parametrize("adjoint", ["reversible", "checkpointed", "direct"])
def test_jvp_and_jacfwd(adjoint, save_every):
    step, z0, params = CASES["pendulum"]()
    args = (z0, params, jnp.asarray(DT))
    tangents = tuple(random_like(a, seed=i) for i, a in enumerate(args))
    loss, ref_loss = make_loss(step, adjoint, save_every), make_loss(step, "direct", save_every)
    val, tan = jax.jvp(loss, args, tangents)
    ref_val, ref_tan = jax.jvp(ref_loss, args, tangents)
    np.testing.assert_allclose(tan, ref_tan, rtol=1e-10)
    grad = make_grad(step, "direct", save_every)(*args)
    np.testing.assert_allclose(tan, dot(grad, tangents), rtol=1e-10)
    jac = jax.jit(jax.jacfwd(loss, argnums=(0, 1, 2)))(*args)
    assert rel_err(jac, grad) < 1e-10


def test_second_order_reversible():
    step, z0, params = CASES["pendulum"]()
    f = lambda k, dt, adj: make_loss(step, adj, 20, steps=60)(z0, {"k": k}, dt)
    args = (jnp.asarray(1.3), jnp.asarray(DT))
    jit = lambda t: jax.jit(t(t(f, (0, 1)), (0, 1)), static_argnums=2)
    ref = jit(jax.jacfwd)(*args, "direct")
    assert rel_err(jax.jit(jax.hessian(f, (0, 1)), static_argnums=2)(*args, "reversible"), ref) < 1e-9
    assert rel_err(jit(jax.jacfwd)(*args, "reversible"), ref) < 1e-9  # fwd-over-fwd: tangent_p's own JVP
    assert rel_err(jit(jax.jacrev)(*args, "reversible"), ref) < 1e-9  # rev-over-rev


# ---------------------------------------------------------------- vmap / jit / closures


@pytest.mark.parametrize("adjoint,save_every,reanchor", [("reversible", None, None), ("reversible", 20, 30),
                                                          ("checkpointed", 20, None)])  # fmt: skip
def test_vmap_matches_members(adjoint, save_every, reanchor):
    step, _, _ = CASES["pendulum"]()
    Z = (jnp.linspace(0.1, 1.0, 12).reshape(4, 3), jnp.linspace(-0.5, 0.5, 12).reshape(4, 3))
    K, DTs = jnp.array([0.8, 1.0, 1.2, 1.4]), jnp.array([0.01, 0.02, 0.04, 0.05])
    kw = {"reanchor": reanchor} if reanchor else {}
    loss, grad = make_loss(step, adjoint, save_every, **kw), make_grad(step, adjoint, save_every, **kw)
    ref_loss, ref_grad = make_loss(step, "direct", save_every), make_grad(step, "direct", save_every)
    member = lambda i: (jax.tree.map(lambda x: x[i], Z), {"k": K[i]}, DTs[i])
    members = jax.tree.map(lambda *x: jnp.stack(x), *[ref_grad(*member(i)) for i in range(4)])
    P = {"k": K}
    assert rel_err(jax.jit(jax.vmap(grad))(Z, P, DTs), members) < 1e-10  # vmap of grad
    summed = lambda Z, P, DTs: jnp.sum(jax.vmap(loss)(Z, P, DTs))
    assert rel_err(jax.jit(jax.grad(summed, (0, 1, 2)))(Z, P, DTs), members) < 1e-10  # grad of vmap
    one = ({"k": jnp.asarray(1.1)}, jnp.asarray(0.03))  # unbatched params and dt
    only_z = jax.jit(jax.vmap(lambda z: grad(z, *one)))(Z)
    assert rel_err(only_z, jax.vmap(lambda z: ref_grad(z, *one))(Z)) < 1e-10
    np.testing.assert_allclose(jax.vmap(loss)(Z, P, DTs), jax.vmap(ref_loss)(Z, P, DTs), rtol=1e-12)
    jvp = lambda fn: jax.jit(jax.vmap(lambda *a: jax.jvp(fn, a, (a[0], {"k": 1.0}, 1.0))[1]))
    np.testing.assert_allclose(jvp(loss)(Z, P, DTs), jvp(ref_loss)(Z, P, DTs), rtol=1e-10)


def test_closure_over_traced_values():
    """A step closing over a differentiated / batched / jitted value (what tpjax.integrate may build)."""
    _, z0, _ = CASES["pendulum"]()

    def loss(w, adjoint):
        step = lambda params, z, dt: leapfrog(V_pendulum)({"k": w * params["k"]}, z, dt)
        return jnp.sum(solve(step, z0, 0.05, {"k": 1.0}, steps=50, adjoint=adjoint)[0] ** 2)

    ws = jnp.array([0.5, 1.5])
    ref = jax.vmap(jax.grad(loss), (0, None))(ws, "direct")
    batched_grad = jax.jit(jax.vmap(jax.grad(loss), (0, None)), static_argnums=1)
    np.testing.assert_allclose(batched_grad(ws, "reversible"), ref, rtol=1e-10)
    np.testing.assert_allclose(jax.grad(lambda w: jnp.sum(jax.vmap(loss, (0, None))(w, "reversible")))(ws),
                               ref, rtol=1e-10)  # fmt: skip


def test_save_every_semantics_and_zero_steps():
    step, z0, params = CASES["pendulum"]()
    for adjoint in ("reversible", "checkpointed", "direct"):
        zT, (qs, ps) = solve(step, z0, 0.05, params, steps=60, save_every=20, adjoint=adjoint)
        assert qs.shape == (3, 3)
        for k in range(3):
            qk, pk = solve(step, z0, 0.05, params, steps=20 * (k + 1), adjoint=adjoint)
            np.testing.assert_allclose(qs[k], qk, rtol=1e-13)
            np.testing.assert_allclose(ps[k], pk, rtol=1e-13)
        np.testing.assert_allclose(zT[0], qs[-1], rtol=0)
        same = solve(step, z0, 0.05, params, steps=0, adjoint=adjoint)
        assert all(a is b for a, b in zip(same, z0, strict=True))
        _, (q_empty, _) = solve(step, z0, 0.05, params, steps=0, save_every=5, adjoint=adjoint)
        assert q_empty.shape == (0, 3)


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"adjoint": "backsolve"}, "adjoint must be one of"),
        ({"steps": -1}, "steps must be a non-negative Python int"),
        ({"steps": 10.0}, "steps must be a non-negative Python int"),
        ({"steps": True}, "steps must be a non-negative Python int"),
        ({"save_every": 7}, "save_every must be None or a positive int dividing steps=10"),
        ({"save_every": 0}, "save_every"),
        ({"reanchor": 0}, "reanchor must be None or a positive int"),
        ({"reanchor": 2.5}, "reanchor must be None or a positive int"),
        ({"reanchor": 5, "adjoint": "direct"}, "reanchor only applies to adjoint='reversible'"),
        ({"checkpoints": 0, "adjoint": "checkpointed"}, "checkpoints must be None or a positive int"),
        ({"checkpoints": 3}, "checkpoints only applies to adjoint='checkpointed'"),
        ({"dt": jnp.ones(2)}, "dt must be a scalar"),
    ],
)
def test_bad_arguments(kw, match):
    step, z0, params = CASES["pendulum"]()
    kw = {"steps": 10, "dt": 0.1, **kw}
    dt = kw.pop("dt")
    with pytest.raises(ValueError, match=match):
        solve(step, z0, dt, params, **kw)


def test_traced_steps_and_bad_step_output():
    step, z0, params = CASES["pendulum"]()
    with pytest.raises(ValueError, match="static_argnames"):
        jax.jit(lambda n: solve(step, z0, 0.1, params, steps=n))(3)
    with pytest.raises(TypeError, match="must return a state with the pytree structure"):
        solve(lambda p, z, dt: z[0], z0, 0.1, params, steps=3)
