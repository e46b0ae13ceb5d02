"""Coefficient data of the splitting library: composition weights and kick/drift tables (numbers only).

Compositions are weights ``gammas`` of leapfrog sub-steps (outermost first, a palindrome). Splittings are
``(a, b)`` in the convention of :mod:`tpjax.integrators.composition`: drift(a_1) kick(b_1) drift(a_2) ...,
with a_1 = 0 for kick-first tables. Every table is checked by ``tests/test_methods_library.py``: its order
conditions (in the free algebra of the base method's generator for compositions; in Taylor jets of one step
for splittings), Sigma = 1, symmetry, and the measured convergence order.
"""

from __future__ import annotations

import math


def palindrome(half, middle=None) -> tuple[float, ...]:
    """(g_1, ..., g_m[, middle], g_m, ..., g_1) from the outer half ``half = (g_1, ..., g_m)``."""
    half = tuple(half)
    return half + (() if middle is None else (middle,)) + half[::-1]


# ---- symmetric compositions of leapfrog ---------------------------------------------------------------

#: Yoshida, Phys. Lett. A 150 (1990) 262, 4th order: the triple jump w1 = 1/(2 - 2^(1/3)), w0 = 1 - 2 w1.
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
YOSHIDA4 = (_W1, 1.0 - 2.0 * _W1, _W1)

#: Yoshida (1990), 6th order, solution A, 7 sub-steps: (w3, w2, w1, w0, w1, w2, w3). The values printed
#: there (w1 = -1.17767998417887, w2 = 0.235573213359357, w3 = 0.784513610477560) agree with these roots
#: of the order conditions (Newton iteration in 50-digit arithmetic) to 2e-15.
YOSHIDA6 = palindrome((0.78451361047755726381949763, 0.23557321335935813368479318, -1.17767998417887100694641568),
                      1.31518632068391121888424973)  # fmt: skip

#: Yoshida (1990), 8th order, solution D, 15 sub-steps (w7, ..., w1, w0, w1, ..., w7). The system is
#: ill-conditioned (condition number ~1.5e5): the 15 printed digits (w1 = 0.102799849391985,
#: w2 = -1.96061023297549, w3 = 1.93813913762276, w4 = -0.158240635368243, w5 = -1.44485223686048,
#: w6 = 0.253693336566229, w7 = 0.914844246229740) solve the conditions only to 3e-12. These are the exact
#: roots, found by Newton iteration in 50-digit arithmetic from the printed values (which they differ from by
#: at most 2.4e-13); they satisfy the conditions to round-off.
YOSHIDA8 = palindrome((0.91484424622979156675, 0.25369333656621135415, -1.4448522368606051577,
                       -0.15824063536805017520, 1.9381391376225259866, -1.9606102329753108076,
                       0.10279984939179644070), 1.7084530707872815847)  # fmt: skip

#: Suzuki, Phys. Lett. A 146 (1990) 319, the 4th-order fractal: p = 1/(4 - 4^(1/3)), (p, p, 1 - 4p, p, p).
_P = 1.0 / (4.0 - 4.0 ** (1.0 / 3.0))
SUZUKI4 = (_P, _P, 1.0 - 4.0 * _P, _P, _P)

#: Kahan & Li, Math. Comp. 66 (1997) 1089, 6th order with 9 sub-steps (s9odr6a).
KAHAN_LI6 = palindrome((0.39216144400731413927925056, 0.33259913678935943859974864, -0.70624617255763935980996482,
                        0.08221359629355080023149045), 0.79854399093482996339895035)  # fmt: skip

#: Kahan & Li (1997), 8th order with 17 sub-steps (s17odr8a).
KAHAN_LI8 = palindrome((0.13020248308889008087881763, 0.56116298177510838456196441, -0.38947496264484728640807860,
                        0.15884190655515560089621075, -0.39590389413323757733623154, 0.18453964097831570709183254,
                        0.25837438768632204729397911, 0.29501172360931029887096624),
                       -0.60550853383003451169892108)  # fmt: skip

#: Sofroniou & Spaletta, Optim. Methods Softw. 20 (2005) 597, 10th order with 35 sub-steps (s35odr10).
SOFRONIOU_SPALETTA10 = palindrome((
    0.07879572252168641926390768, 0.31309610341510852776481247, 0.02791838323507806610952027,
    -0.22959284159390709415121340, 0.13096206107716486317465686, -0.26973340565451071434460973,
    0.07497334315589143566613711, 0.11199342399981020488957508, 0.36613344954622675119314812,
    -0.39910563013603589787862981, 0.10308739852747107731580277, 0.41143087395589023782070412,
    -0.00486636058313526176219566, -0.39203335370863990644808194, 0.05194250296244964703718290,
    0.05066509075992449633587434, 0.04967437063972987905456880), 0.04931773575959453791768001)  # fmt: skip

# ---- splittings (a, b): drift coefficients a, kick coefficients b -----------------------------------------

#: Omelyan, Mryglod & Folk, Comput. Phys. Commun. 146 (2002) 188: the minimum-error 2-stage method, velocity
#: form kick(l) drift(1/2) kick(1 - 2l) drift(1/2) kick(l). Its h^3 error is ((6l-1)/24) [A,[A,B]] +
#: ((6l^2-6l+1)/12) [B,[B,A]] (A = drift, B = kick); the norm is least at the real root of
#: 48 l^3 - 72 l^2 + 38 l - 5 = 0, l = 1/2 - c/12 + 1/(6c) with c = (2 sqrt(326) + 36)^(1/3) = 0.1931833275037836.
_C = (2.0 * math.sqrt(326.0) + 36.0) ** (1.0 / 3.0)
OMELYAN_LAMBDA = 0.5 - _C / 12.0 + 1.0 / (6.0 * _C)
OMELYAN2 = ((0.0, 0.5, 0.5), (OMELYAN_LAMBDA, 1.0 - 2.0 * OMELYAN_LAMBDA, OMELYAN_LAMBDA))

#: McLachlan, SIAM J. Sci. Comput. 16 (1995) 151: the symmetric 4th-order method with 5 force evaluations
#: (composition of symplectic Euler and its adjoint with weights (14 - r)/108, (146 + 5r)/540,
#: (-23 - 20r)/270, (-2 + 10r)/135, 1/5, mirrored; r = sqrt(19)), drift first: a = ((14 - r)/108,
#: (100 - 35r)/540, (25 + 10r)/135, ...mirrored), b = (2/5, -1/10, 2/5, -1/10, 2/5).
_R = math.sqrt(19.0)
MCLACHLAN4 = (palindrome(((14.0 - _R) / 108.0, (100.0 - 35.0 * _R) / 540.0, (25.0 + 10.0 * _R) / 135.0)),
              (0.4, -0.1, 0.4, -0.1, 0.4))  # fmt: skip

#: Blanes & Moan, J. Comput. Appl. Math. 142 (2002) 313, Table 3: SRKN_6^b, order 4 (kick first, 6 force
#: evaluations with FSAL), optimised for T = |p|^2/2 (Runge-Kutta-Nystrom problems).
_BM4_B = (0.0829844064174052, 0.396309801498368, -0.0390563049223486)
_BM4_A = (0.245298957184271, 0.604872665711080)
BLANES_MOAN4 = ((0.0,) + palindrome(_BM4_A + (0.5 - sum(_BM4_A),)), palindrome(_BM4_B, 1.0 - 2.0 * sum(_BM4_B)))

#: Blanes & Moan (2002), Table 3: SRKN_11^b, order 6 for T = |p|^2/2 (order 4 for a general T(p)); kick
#: first, 11 force evaluations with FSAL.
_BM6_B = (0.0414649985182624, 0.198128671918067, -0.0400061921041533, 0.0752539843015807, -0.0115113874206879)
_BM6_A = (0.123229775946271, 0.290553797799558, -0.127049212625417, -0.246331761062075, 0.357208872795928)
BLANES_MOAN6 = ((0.0,) + palindrome(_BM6_A, 1.0 - 2.0 * sum(_BM6_A)), palindrome(_BM6_B + (0.5 - sum(_BM6_B),)))

#: Calvo & Sanz-Serna, SIAM J. Sci. Comput. 14 (1993) 936: the optimised 5-stage order-4 RKN method (order 4
#: for T = |p|^2/2, order 3 for a general T(p)); kick first: b1 a1 b2 a2 b3 a3 b4 a4 b5; not symmetric.
CALVO_SANZ4 = ((0.0, 0.2051776615422863869, 0.4030212816042145870, -0.1209208763389140082, 0.5127219331924130343),
               (0.0617588581356263250, 0.3389780265536433551, 0.6147913071755775662, -0.1405480146593733802,
                0.1250198227945261338))  # fmt: skip
