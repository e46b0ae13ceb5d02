"""Forms proven from a jaxpr with the symbolic evaluator: diagonal quadratics (rigid body) and skew tensors.

``polynomial_support`` evaluates on monomial supports: which monomials of the state may carry a nonzero
coefficient (degree <= 2 tracked exactly, anything else is ``top``). ``proven_skew`` evaluates on linear
combinations of atoms (numbers, state entries, traced constants, opaque subexpressions, products), in
which J + J^T must cancel exactly. Both are sound (a "yes" is a proof for every state and every value of
traced parameters) and incomplete (a "no" may be a form these rules do not recognise).
"""

from __future__ import annotations

import numpy as np

from .symbolic import Algebra, TooLarge, evaluate


class Support:
    """The set of monomials (exponent tuples) an entry may contain, or ``top`` (not a polynomial of low degree)."""

    __slots__ = ("monos", "top", "degree")

    def __init__(self, monos=frozenset(), top=False, degree=2):
        self.monos, self.top, self.degree = frozenset(monos), top, degree

    def __add__(self, o):
        if isinstance(o, np.ndarray):  # let numpy broadcast the element over the array
            return NotImplemented
        return Support(top=True) if self.top or o.top else Support(self.monos | o.monos, degree=self.degree)

    def __radd__(self, o):  # np.einsum starts its sums at the int 0
        return self

    def __neg__(self):
        return self

    def __mul__(self, o):
        if isinstance(o, np.ndarray):
            return NotImplemented
        if self.top or o.top:
            return Support(top=True)
        prods = {tuple(a + b for a, b in zip(m, n, strict=True)) for m in self.monos for n in o.monos}
        if any(sum(m) > self.degree for m in prods):
            return Support(top=True)
        return Support(prods, degree=self.degree)

    @property
    def constant(self) -> bool:
        return not self.top and all(sum(m) == 0 for m in self.monos)


class Supports(Algebra):
    """Monomial supports in n state entries, degree at most ``degree`` (higher is ``top``)."""

    def __init__(self, n: int, degree: int = 2):
        self.n, self.degree = n, degree

    def number(self, x):
        return Support(() if x == 0 else ((0,) * self.n,), degree=self.degree)

    def const(self, k, index):
        return Support(((0,) * self.n,), degree=self.degree)

    def state(self, shape) -> np.ndarray:
        out = np.empty(shape, object)
        for j, i in enumerate(np.ndindex(*shape)):
            out[i] = Support((tuple(int(k == j) for k in range(self.n)),), degree=self.degree)
        return out

    def divide(self, a, b):
        nonzero = not b.top and bool(b.monos)
        return a if b.constant and nonzero else Support(top=True)

    def opaque(self, name, key, inputs):
        const = all(x.constant for x in inputs)
        return Support(((0,) * self.n,), degree=self.degree) if const else Support(top=True)


def polynomial_support(jaxpr, consts, shape, degree: int = 2):
    """The monomials of the state that the scalar output of ``jaxpr`` may contain (None: not a polynomial
    of degree <= ``degree`` that these rules can prove). ``consts``: concrete arrays, or None when traced."""
    alg = Supports(int(np.prod(shape)), degree)
    try:
        (out,) = evaluate(jaxpr, consts, [alg.state(shape)], alg)
    except TooLarge:
        return None
    e = out.reshape(-1)[0] if out.size == 1 else Support(top=True)
    return None if e.top else e.monos


ONE = ("1",)


class Lin:
    """sum_k c_k atom_k with float coefficients; atoms are hashable tuples, products are sorted pairs."""

    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = {a: c for a, c in terms.items() if c != 0}

    @property
    def key(self):
        return tuple(sorted(self.terms.items(), key=repr))

    def number(self):
        """The value when this is a plain number, else None."""
        return self.terms.get(ONE, 0.0) if set(self.terms) <= {ONE} else None

    def scale(self, c):
        return Lin({a: c * v for a, v in self.terms.items()})

    def __add__(self, o):
        if isinstance(o, np.ndarray):  # let numpy broadcast the element over the array
            return NotImplemented
        out = dict(self.terms)
        for a, c in o.terms.items():
            out[a] = out.get(a, 0.0) + c
        return Lin(out)

    def __radd__(self, o):  # np.einsum starts its sums at the int 0
        return self

    def __neg__(self):
        return self.scale(-1.0)

    def __mul__(self, o):
        if isinstance(o, np.ndarray):
            return NotImplemented
        x, y = self.number(), o.number()
        if x is not None:
            return o.scale(x)
        if y is not None:
            return self.scale(y)
        out = {}
        for a, c in self.terms.items():
            for b, d in o.terms.items():
                atom = b if a == ONE else a if b == ONE else ("mul", *sorted((a, b), key=repr))
                out[atom] = out.get(atom, 0.0) + c * d
        return Lin(out)


class Linear(Algebra):
    def number(self, x):
        return Lin({ONE: float(x)})

    def const(self, k, index):
        return Lin({("c", k, index): 1.0})

    def state(self, shape) -> np.ndarray:
        out = np.empty(shape, object)
        for j, i in enumerate(np.ndindex(*shape)):
            out[i] = Lin({("z", j): 1.0})
        return out

    def divide(self, a, b):
        y = b.number()
        if y is not None and y != 0:
            return a.scale(1.0 / y)
        return self.opaque("div", "div", (a, b))

    def opaque(self, name, key, inputs):
        return Lin({("op", key, tuple(x.key for x in inputs)): 1.0})


def proven_skew(jaxpr, consts, shape, rtol: float) -> bool:
    """Does the (n, n) output of ``jaxpr`` (a function of one state array of ``shape``) satisfy
    J + J^T == 0 identically? Symbolically: every entry of J + J^T must cancel to a number of size
    <= rtol * max(1, |numbers in J|). ``consts``: concrete arrays, or None when traced."""
    alg = Linear()
    try:
        (J,) = evaluate(jaxpr, consts, [alg.state(shape)], alg)
    except TooLarge:
        return False
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        return False
    scale = max([1.0] + [abs(e.number()) for e in J.reshape(-1) if e.number() is not None])
    for i in range(J.shape[0]):
        for j in range(i, J.shape[0]):
            s = J[i, j] + J[j, i]
            x = s.number()
            if x is None or abs(x) > rtol * scale:
                return False
    return True
