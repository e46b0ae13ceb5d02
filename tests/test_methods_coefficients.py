"""The coefficient tables themselves, checked without trusting them (numpy only, no tpjax tracing).

- Compositions of a symmetric base method Phi_h = exp(h Y1 + h^3 Y3 + h^5 Y5 + ...) with free generators
  Y_k: the product of exp(S(g_i)) must equal exp(Y1) up to weight p (HLW V.3). This is exact polynomial
  arithmetic in the truncated free algebra, so it checks the order conditions to round-off.
- Splittings: Taylor jets in h of one step on random separable problems (sums of exponentials for V and,
  for the general case, T) against the exact flow's jet; the first non-zero defect gives the order.
- Yoshida's 6th/8th-order roots re-derived by Newton iteration in 50-digit decimals; Omelyan's lambda.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from tpjax.integrators import METHODS, Kick, Splitting
from tpjax.integrators import tables as T

COMPOSITIONS = {"yoshida4": (T.YOSHIDA4, 4), "yoshida6": (T.YOSHIDA6, 6), "yoshida8": (T.YOSHIDA8, 8),
                "suzuki4": (T.SUZUKI4, 4), "kahan_li6": (T.KAHAN_LI6, 6), "kahan_li8": (T.KAHAN_LI8, 8),
                "sofroniou_spaletta10": (T.SOFRONIOU_SPALETTA10, 10)}  # fmt: skip
#: order for a general T(p) where it is below the nominal (Runge-Kutta-Nystrom, T = |p|^2/2) order.
GENERAL_ORDER = {"blanes_moan6": 4, "calvo_sanz4": 3}


class FreeAlgebra:
    """Words in letters of odd weight 1, 3, 5, ..., truncated at total weight N; coefficients in any ring."""

    def __init__(self, N: int):
        self.N, words, frontier = N, [()], [()]
        while frontier:
            frontier = [w + (k,) for w in frontier for k in range(1, N + 1, 2) if sum(w) + k <= N]
            words += frontier
        self.words, index = words, {w: i for i, w in enumerate(words)}
        self.weight = [sum(w) for w in words]
        self.pairs = [(i, j, index[u + v]) for i, u in enumerate(words) for j, v in enumerate(words)
                      if sum(u) + sum(v) <= N]  # fmt: skip
        self.letter = {k: index[(k,)] for k in range(1, N + 1, 2)}

    def mul(self, x, y):
        out = [0 * x[0]] * len(x)
        for i, j, k in self.pairs:
            out[k] = out[k] + x[i] * y[j]
        return out

    def exp(self, x):
        out = [0 * x[0]] * len(x)
        out[0] = out[0] + 1
        term = list(out)
        for k in range(1, self.N + 1):
            term = [t / k for t in self.mul(term, x)]
            out = [a + b for a, b in zip(out, term, strict=True)]
        return out

    def defect(self, gammas, weight: int):
        """max |coefficient| of prod_i exp(S(g_i)) - exp(Y1) over words of the given total weight."""
        zero = 0 * gammas[0]
        psi = [zero] * len(self.words)
        psi[0] = zero + 1
        for g in gammas:
            s = [zero] * len(self.words)
            for k, i in self.letter.items():
                s[i] = g**k
            psi = self.mul(psi, self.exp(s))
        y1 = [zero] * len(self.words)
        y1[self.letter[1]] = zero + 1
        return [a - b for a, b, w in zip(psi, self.exp(y1), self.weight, strict=True) if w == weight]


@pytest.fixture(scope="module")
def algebra():
    return FreeAlgebra(11)


@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_composition_weights_solve_the_order_conditions(name, algebra):
    gammas, p = COMPOSITIONS[name]
    assert METHODS[name].order == p
    for w in range(1, p + 1):
        assert max(map(abs, algebra.defect(list(gammas), w))) <= 1e-12, (name, w)
    assert max(map(abs, algebra.defect(list(gammas), p + 1))) >= 1e-7  # and the order is not higher


def _newton_decimal(half, p, digits=50, iters=6):
    """Roots of the order conditions of (w_m..w_1, w_0, w_1..w_m), w_0 = 1 - 2 sum(w): residual in Decimal,
    Jacobian by complex-step in float64 (so each step gains ~11 digits)."""
    getcontext().prec = digits
    alg = FreeAlgebra(p)
    full = lambda w: list(w[::-1]) + [1 - 2 * sum(w)] + list(w)  # noqa: E731
    residual = lambda w: [r for k in range(3, p + 1, 2) for r in alg.defect(full(w), k)]  # noqa: E731
    x = [Decimal(repr(v)) for v in half]
    for _ in range(iters):
        xf = np.array([float(v) for v in x])
        J = np.stack([np.array(residual(list(xf + 1e-30j * e)), complex).imag / 1e-30 for e in np.eye(len(x))], 1)
        dx = np.linalg.lstsq(J, -np.array([float(r) for r in residual(x)]), rcond=None)[0]
        x = [a + Decimal(repr(float(d))) for a, d in zip(x, dx, strict=True)]
    assert max(abs(r) for r in residual(x)) < Decimal("1e-40")
    return np.array([float(v) for v in x])


def test_yoshida6_is_the_root_of_its_order_conditions():
    printed = (-1.17767998417887, 0.235573213359357, 0.784513610477560)  # Yoshida (1990), solution A
    root = _newton_decimal(printed, 6)
    typed = np.array(T.YOSHIDA6[:3][::-1])
    assert np.max(np.abs(root - typed)) <= 1e-15 and np.max(np.abs(root - printed)) <= 5e-15  # 15 printed digits


def test_yoshida8_is_the_root_of_its_order_conditions():
    printed = (0.102799849391985, -1.96061023297549, 1.93813913762276, -0.158240635368243, -1.44485223686048,
               0.253693336566229, 0.914844246229740)  # Yoshida (1990), solution D, 15 digits  # fmt: skip
    root = _newton_decimal(printed, 8)
    typed = np.array(T.YOSHIDA8[:7][::-1])
    assert np.max(np.abs(root - typed)) <= 1e-15
    assert 1e-14 < np.max(np.abs(root - printed)) <= 2.5e-13  # the printed digits are off (ill-conditioned)


def test_omelyan_lambda_minimises_the_third_order_error():
    lam = 0.2
    for _ in range(30):  # the real root of 48 l^3 - 72 l^2 + 38 l - 5 (d/dl of the error norm)
        lam -= (48 * lam**3 - 72 * lam**2 + 38 * lam - 5) / (144 * lam**2 - 144 * lam + 38)
    assert abs(lam - T.OMELYAN_LAMBDA) <= 1e-15 and abs(lam - 0.1931833275037836) <= 1e-15
    norm = lambda x: ((6 * x - 1) / 24) ** 2 + ((6 * x**2 - 6 * x + 1) / 12) ** 2  # noqa: E731
    assert norm(lam) < min(norm(lam - 1e-3), norm(lam + 1e-3))
    # the error formula itself: the h^3 jet defect of the scheme is alpha(l) E1 + beta(l) E2 for fixed E1, E2
    ab = lambda x: np.array([(6 * x - 1) / 24, (6 * x**2 - 6 * x + 1) / 12])  # noqa: E731
    jets = {x: _defects(_omelyan(x), _problems(rkn=False))[:, 3].ravel() for x in (0.1, 0.3, 0.25)}
    E = np.linalg.solve(np.stack([ab(0.1), ab(0.3)]), np.stack([jets[0.1], jets[0.3]]))
    assert np.max(np.abs(ab(0.25) @ E - jets[0.25])) <= 1e-13


def _omelyan(lam):
    return [("k", lam), ("d", 0.5), ("k", 1 - 2 * lam), ("d", 0.5), ("k", lam)]


# ---- Taylor jets of one step ---------------------------------------------------------------------------

K = 12  # jet length: checks orders up to 11


def _sexp(x):
    e = np.zeros_like(x)
    e[0] = np.exp(x[0])
    for k in range(1, len(x)):
        e[k] = sum(j * x[j] * e[k - j] for j in range(1, k + 1)) / k
    return e


def _problems(rkn: bool, n=3, d=2, M=3):
    """Random separable H: V(q) = sum_m w_m exp(k_m . q); T = |p|^2/2 (rkn) or a sum of exponentials."""
    out = []
    for seed in range(n):
        r = np.random.default_rng(seed)
        kv, wv, kt, wt = r.normal(size=(M, d)), r.normal(size=M) / M, r.normal(size=(M, d)), r.normal(size=M) / M
        gv = lambda q, kv=kv, wv=wv: (_sexp(q @ kv.T) * wv) @ kv  # noqa: E731
        gt = (lambda p: p) if rkn else (lambda p, kt=kt, wt=wt: (_sexp(p @ kt.T) * wt) @ kt)
        out.append((gv, gt, 0.5 * r.normal(size=d), 0.5 * r.normal(size=d)))
    return out


def _shift(x, c):
    return np.concatenate([np.zeros_like(x[:1]), c * x[:-1]])


def _integral(x):
    return np.concatenate([np.zeros_like(x[:1]), x[:-1] / np.arange(1, K)[:, None]])


def _defects(stages, problems):
    """Jets (K, 2d) of one step minus the exact flow's jet (Picard iteration on series), per problem."""
    out = []
    for gv, gt, q0, p0 in problems:
        Q0, P0 = np.zeros((K, len(q0))), np.zeros((K, len(q0)))
        Q0[0], P0[0] = q0, p0
        q, p = Q0, P0
        for kind, c in stages:
            if kind == "k":
                p = p - _shift(gv(q), c)
            else:
                q = q + _shift(gt(p), c)
        qe, pe = Q0, P0
        for _ in range(K):  # each pass fixes one more Taylor coefficient of the exact flow
            qe, pe = Q0 + _integral(gt(pe)), P0 - _integral(gv(qe))
        out.append(np.concatenate([q - qe, p - pe], axis=1))
    return np.stack(out)


def _jet_order(name, rkn):
    stages = [("k" if isinstance(s, Kick) else "d", s.c) for s in METHODS[name].stages]
    size = np.abs(_defects(stages, _problems(rkn))).max(axis=(0, 2))
    nonzero = [k for k in range(1, K) if size[k] > 1e-12]  # round-off is ~1e-15 here
    assert nonzero and size[nonzero[0]] > 1e-9, (name, size)  # a clear gap to the leading error
    return nonzero[0] - 1


SPLITTINGS = sorted(k for k, v in METHODS.items() if isinstance(v, Splitting) and k != "velocity_verlet")


@pytest.mark.parametrize("name", SPLITTINGS)
def test_jets_give_the_nominal_order(name):
    m = METHODS[name]
    assert _jet_order(name, rkn=True) == m.order
    assert _jet_order(name, rkn=False) == GENERAL_ORDER.get(name, m.order)


@pytest.mark.parametrize("name", SPLITTINGS)
def test_tables_are_consistent_and_symmetric_when_claimed(name):
    m = METHODS[name]
    a, b = m.coefficients
    assert abs(math.fsum(a) - 1) <= 1e-15 and abs(math.fsum(b) - 1) <= 1e-15
    palindrome = all(
        type(s) is type(t) and abs(s.c - t.c) <= 1e-15 for s, t in zip(m.stages, m.stages[::-1], strict=True)
    )
    assert palindrome == m.symmetric
