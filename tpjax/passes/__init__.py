"""Optimisation passes over TP-IR. Each pass is a function Program -> Program; ``PIPELINE`` is the
table of contents. ``TPJAX_DEBUG=1`` prints one line per pass, ``=2`` also the IR after each pass;
``=3`` also the generated code of every hook in ``GENERATED_CODE_HOOKS`` (the Triton codegen registers
one); ``TPJAX_DUMP_DIR`` writes the listings (``NN_<pass>.tpir``) and the code (``NN_codegen.txt``) to files.
``precision(policy)`` is not in the default pipeline: the compiler appends it when a policy is given."""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable

from ..ir.node import Program
from ..ir.printer import to_text
from ..ir.verify import verify
from .canonical import canonical
from .cse import cse
from .dce import dce
from .fsal import fsal
from .fuse_fma import fuse_fma
from .lie_cross import lie_cross
from .precision import precision
from .simplify import simplify

PIPELINE = (
    ("fsal", fsal),  # first: it matches the kick blocks as the frontend emitted them
    ("dce", dce),  # the forward (energy) phase and dead recomputations go before the rules count uses
    ("simplify", simplify),
    ("cse", cse),
    ("fuse_fma", fuse_fma),
    ("simplify", simplify),  # fusion leaves FMA(x, 1, 0) behind
    ("canonical", canonical),
    ("lie_cross", lie_cross),
    ("dce", dce),  # last
)

#: callables Program -> generated source text, printed at TPJAX_DEBUG=3 (the Triton codegen registers here).
GENERATED_CODE_HOOKS: list[Callable[[Program], str]] = []

__all__ = ["GENERATED_CODE_HOOKS", "PIPELINE", "canonical", "cse", "dce", "fsal", "fuse_fma", "lie_cross",
           "optimize", "precision", "simplify"]  # fmt: skip


def optimize(prog: Program, pipeline=PIPELINE, *, check: bool | None = None, report: bool = True) -> Program:
    """Run ``pipeline`` over ``prog``; with ``check`` (default: under pytest) verify after every pass.
    ``report=False`` keeps TPJAX_DEBUG / TPJAX_DUMP_DIR quiet (auxiliary programs such as the prologue)."""
    level = int(os.environ.get("TPJAX_DEBUG", "0") or 0) if report else 0
    dump = os.environ.get("TPJAX_DUMP_DIR") if report else None
    check = ("pytest" in sys.modules) if check is None else check
    for n, (name, fn) in enumerate(pipeline, 1):
        before = len(prog)
        prog = fn(prog)
        if check:
            verify(prog)
        if level >= 1:
            print(f"[tpjax] pass {name:<10} {before:4d} -> {len(prog):4d} instructions", file=sys.stderr)
        if level >= 2:
            print(to_text(prog), file=sys.stderr)
        if dump:
            path = pathlib.Path(dump)
            path.mkdir(parents=True, exist_ok=True)
            (path / f"{n:02d}_{name}.tpir").write_text(to_text(prog) + "\n")
    if level >= 3:
        _generated_code(prog, dump, len(pipeline) + 1)
    return prog


def _generated_code(prog: Program, dump: str | None, n: int) -> None:
    """TPJAX_DEBUG=3: print (and dump as ``NN_codegen.txt``) what every registered code generator makes."""
    for k, hook in enumerate(GENERATED_CODE_HOOKS):
        code = hook(prog)
        print(f"[tpjax] generated code ({getattr(hook, '__name__', 'hook')}):\n{code}", file=sys.stderr)
        if dump:
            path = pathlib.Path(dump)
            path.mkdir(parents=True, exist_ok=True)
            (path / f"{n + k:02d}_codegen.txt").write_text(code + "\n")
