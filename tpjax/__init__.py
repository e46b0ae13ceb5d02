"""tpjax: structure-preserving Hamiltonian simulation in JAX through the TP-IR compiler.

``integrate`` / ``trajectory`` run a Hamiltonian's symplectic (or Lie-Poisson) flow under jit, vmap and
grad; ``compile`` shows the TP-IR program. See README.md.
"""

from ._memory import EnsembleTooLarge as EnsembleTooLarge
from ._validate import NonFiniteError as NonFiniteError
from .api import compile as compile  # noqa: A004
from .api import integrate as integrate
from .api import trajectory as trajectory
from .compiler import Compiled as Compiled
from .events import Event as Event
from .integrators import METHODS as METHODS
from .integrators import Composition as Composition
from .integrators import GaussLegendre as GaussLegendre
from .integrators import ImplicitMidpoint as ImplicitMidpoint
from .integrators import Splitting as Splitting
from .integrators import Tao as Tao
from .integrators.implicit import ConvergenceError as ConvergenceError
from .precision import Precision as Precision
from .saveat import SaveAt as SaveAt
from .solution import Solution as Solution
from .solution import Stats as Stats
from .structures import SE3 as SE3
from .structures import SO3 as SO3
from .structures import AbstractStructure as AbstractStructure
from .structures import Canonical as Canonical
from .structures import PointVortices as PointVortices
from .structures import Poisson as Poisson
from .tangent import lyapunov as lyapunov
from .tangent import megno as megno

__version__ = "0.1.0"
