"""The TP-IR op codes, their register spaces and the ELEM / POISSON_J sub-tables.

Every op has one contract line. Registers are named by space and number (``S0``, ``G3``):

  S  state (q, p, or L)          G  gradient of H (dH/dq, dH/dp, adjoints)
  F  flow  (zdot = J grad H)     T  temporaries      E  energy      C  constants / parameters of H

``dt`` is the run-time step operand (never baked into the program, so changing dt never recompiles).
"""

from __future__ import annotations

import enum

from .elem_table import BINARY_KIND, LAYOUT_KIND, UNARY_KIND, names


class Op(enum.Enum):
    LOAD = "LOAD"  # LOAD dst, ptr             dst <- memory[ptr]              (state, parameters, carried force)
    STORE = "STORE"  # STORE ptr, src          memory[ptr] <- src
    FMA = "FMA"  # FMA dst, a, b, c             dst = a*b + c                   (numpy broadcasting)
    ELEM = "ELEM"  # ELEM dst, func, x[, y]     dst = func(x[, y])              (see UNARY/BINARY/LAYOUT)
    SUM = "SUM"  # SUM dst, x, axis=(..)         dst = sum of x over axes        (energy reductions)
    GRAD_INIT = "GRAD_INIT"  # GRAD_INIT g, v     g = v (1 for the output adjoint, 0 otherwise)
    ACC_GRAD = "ACC_GRAD"  # ACC_GRAD g, acc, term  g = acc + term          (one chain-rule term)
    POISSON_J = "POISSON_J"  # POISSON_J f, g[, L|J], type=T   f = J(z) g   (see POISSON_TYPES)
    SYMP_STEP = "SYMP_STEP"  # SYMP_STEP s, f, c*dt   s <- s + c*dt*f      (in place: reads and writes s)
    LIE_CROSS = "LIE_CROSS"  # LIE_CROSS f, L, g     f = L x g  (6 mul + 3 sub; rewrite of POISSON_J type=LIE)
    OPAQUE = "OPAQUE"  # OPAQUE dst, name#k, args  an operation TP-IR lacks, run by XLA as traced from H


#: register spaces, in the order the printer and parser know them.
SPACES = ("S", "G", "F", "T", "E", "C")

#: ELEM functions, from the one registry ``ir.elem_table`` (arity, evaluation, derivative, Triton template).
#: UNARY act element by element; BINARY take two operands (numpy broadcasting; ``ge`` is the 0/1 mask
#: x >= y); LAYOUT only move data: broadcast (shape, bdims), reshape (shape), convert (dtype), slice
#: (start, limit: unit strides) and pad (lo, hi: zeros on each side). slice and pad transpose into each
#: other; a concatenation is a sum of pads.
UNARY = names(UNARY_KIND)
BINARY = names(BINARY_KIND)
LAYOUT = names(LAYOUT_KIND)
ELEM_FUNCS = UNARY + BINARY + LAYOUT

#: POISSON_J types. PASS: f = +g (qdot = dH/dp). NEGATE: f = -g (pdot = -dH/dq).
#: LIE: so(3)* bracket, f = [L]x g as the 3x3 matrix product (the form LIE_CROSS rewrites).
#: MATRIX: f = J g with J a (..., n, n) operand (generic state-dependent structure).
POISSON_TYPES = ("PASS", "NEGATE", "LIE", "MATRIX")

#: the seed's four phases, in listing order.
PHASES = ("forward", "backward", "poisson", "integrate")
