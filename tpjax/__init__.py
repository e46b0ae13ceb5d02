"""tpjax: structure-preserving Hamiltonian simulation in JAX through the TP-IR compiler.

``integrate`` / ``trajectory`` run a Hamiltonian's symplectic (or Lie-Poisson) flow under jit, vmap and
grad; ``compile`` shows the TP-IR program. See README.md and DESIGN notes.
"""

from .api import compile as compile  # noqa: A004
from .api import integrate as integrate
from .api import trajectory as trajectory
from .compiler import Compiled as Compiled
from .integrators import METHODS as METHODS
from .integrators import Composition as Composition
from .integrators import Splitting as Splitting
from .precision import Precision as Precision
from .solution import Solution as Solution

__version__ = "0.1.0"
