"""Optimisation passes over TP-IR. Each pass is a function Program -> Program; ``PIPELINE`` is the
table of contents. ``TPJAX_DEBUG=1`` prints one line per pass, ``=2`` also the IR after each pass;
``TPJAX_DUMP_DIR`` writes the listings to files."""

from __future__ import annotations

import os
import pathlib
import sys

from ..ir.node import Program
from ..ir.printer import to_text
from ..ir.verify import verify
from .dce import dce
from .fsal import fsal

PIPELINE = (
    ("fsal", fsal),
    ("dce", dce),
)


def optimize(prog: Program, pipeline=PIPELINE, *, check: bool | None = None) -> Program:
    """Run ``pipeline`` over ``prog``; with ``check`` (default: under pytest) verify after every pass."""
    level = int(os.environ.get("TPJAX_DEBUG", "0") or 0)
    dump = os.environ.get("TPJAX_DUMP_DIR")
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
    return prog
