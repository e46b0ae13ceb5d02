"""Every TP-IR op as a JAX primitive (one file each: wrapper, abstract eval, impl, JVP/transpose,
batching, lowering, registration)."""

from .acc_grad import acc_grad, acc_grad_p
from .elem import elem, elem_p
from .fma import fma, fma_p
from .grad_init import grad_init, grad_init_p
from .lie_cross import lie_cross, lie_cross_p
from .load import load, load_p
from .poisson_j import poisson_j, poisson_j_p
from .store import store, store_p
from .sum import sum_p, tp_sum
from .symp_step import symp_step, symp_step_p

#: every TP-IR primitive, by op name.
PRIMITIVES = {
    "LOAD": load_p, "STORE": store_p, "FMA": fma_p, "ELEM": elem_p, "SUM": sum_p,
    "GRAD_INIT": grad_init_p, "ACC_GRAD": acc_grad_p, "POISSON_J": poisson_j_p,
    "SYMP_STEP": symp_step_p, "LIE_CROSS": lie_cross_p,
}  # fmt: skip

__all__ = [
    "PRIMITIVES", "acc_grad", "elem", "fma", "grad_init", "lie_cross", "load", "poisson_j", "store",
    "symp_step", "tp_sum",
]  # fmt: skip
