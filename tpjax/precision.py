"""Mixed-precision policy: the dtype of the gradient (backward + Poisson) phases and of the step.

The seed's "next step": ACC_GRAD in float64 for conservation accuracy, SYMP_STEP in float32 for speed.
``compensated=True`` adds Kahan-compensated state updates (one carried compensation register per state
part), which removes most of the round-off random walk of a long float32 run.
"""

from __future__ import annotations

import dataclasses

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_ALIASES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32", "f64": "float64"}


def _dtype_name(field: str, value) -> str:
    name = _ALIASES.get(value, value) if isinstance(value, str) else getattr(value, "__name__", None)
    if name is None and value is not None:
        try:
            import numpy as np

            name = np.dtype(value).name
        except TypeError:
            name = None
    if name not in FLOAT_DTYPES:
        raise ValueError(f"Precision.{field} must be one of {FLOAT_DTYPES}, got {value!r}")
    return name


@dataclasses.dataclass(frozen=True)
class Precision:
    """Where each part of a step computes.

    Args:
      grad: dtype of the backward (gradient) and Poisson phases: every ACC_GRAD, FMA, ELEM... of dH.
      step: dtype of the state, of its LOAD / STORE and of SYMP_STEP (must match the state's dtype).
      compensated: Kahan-compensated SYMP_STEP (the lead wires the carried ``ptr_*_comp`` registers).
    """

    grad: str = "float32"
    step: str = "float32"
    compensated: bool = False

    def __post_init__(self):
        for field in ("grad", "step"):
            object.__setattr__(self, field, _dtype_name(field, getattr(self, field)))
        if not isinstance(self.compensated, bool):
            raise TypeError(f"Precision.compensated must be True or False, got {self.compensated!r}")

    def check(self) -> Precision:
        """Raise if a float64 field is requested while jax runs in 32-bit mode; return self."""
        import jax

        wide = [f for f in ("grad", "step") if getattr(self, f) == "float64"]
        if wide and not jax.config.jax_enable_x64:
            raise ValueError(
                f"Precision({wide[0]}='float64') needs 64-bit floats, but jax_enable_x64 is off: "
                "enable it with jax.config.update('jax_enable_x64', True) before compiling, "
                f"or use Precision({wide[0]}='float32')"
            )
        return self
