"""TP-IR: the structure-aware instruction set between a Hamiltonian and a kernel."""

from .node import Instr as Instr
from .node import Program as Program
from .ops import Op as Op
from .printer import parse as parse
from .printer import to_text as to_text
from .verify import verify as verify
