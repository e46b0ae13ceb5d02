"""Run mutmut's mutants one by one in fresh pytest processes, each against the tests that reach it.

mutmut 3.8 marks many mutants of the JAX-heavy packages (``structures/``, ``integrators/``) as timeouts: its
per-mutant limit comes from the test durations of its stats run, where every jit cache was warm, while a
mutant's run compiles from cold. This runner uses mutmut's own ``mutants/`` tree and stats (run
``mutmut run`` once so that they exist, then stop it) and activates each mutant with ``MUTANT_UNDER_TEST``,
running the tests mutmut recorded for its function (fastest first, ``-x``) with a generous timeout.

    .venv/bin/mutmut results --all true | grep tpjax.structures.so3 | sed 's/:.*//; s/^ *//' > names.txt
    .venv/bin/python tests/run_mutants.py names.txt verdicts.txt [--part 0 --parts 2] [--timeout 600]

One line per mutant is appended to the verdicts file: name, killed / survived / no-tests / timeout / rc<N>,
seconds, number of tests. Run from the directory that holds ``mutants/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def verdict(name: str, tests: list[str], timeout: float) -> str:
    env = dict(os.environ, MUTANT_UNDER_TEST=name, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        rc = subprocess.run(cmd, cwd="mutants", env=env, capture_output=True, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "survived", 1: "killed"}.get(rc, f"rc{rc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", help="file with one mutant name per line")
    ap.add_argument("out", help="verdicts file (appended)")
    ap.add_argument("--part", type=int, default=0, help="this process's share: names k with k %% parts == part")
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    args = ap.parse_args()
    stats = json.load(open(os.path.join("mutants", "mutmut-stats.json")))
    by_function, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    names = [ln.strip() for ln in open(args.names) if ln.strip()]
    with open(args.out, "a") as out:
        for k, name in enumerate(names):
            if k % args.parts != args.part:
                continue
            tests = sorted(by_function.get(name.rsplit("__mutmut_", 1)[0], []), key=lambda t: duration.get(t, 0.0))
            t0 = time.time()
            v = verdict(name, tests, args.timeout) if tests else "no-tests"
            out.write(f"{name} {v} {time.time() - t0:.0f}s {len(tests)}\n")
            out.flush()


if __name__ == "__main__":
    main()
