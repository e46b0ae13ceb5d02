"""Progress bars for long runs: a tqdm bar updated from inside the compiled loop.

The loop calls ``tick(n_done)`` after each chunk of steps; ``tick`` is an ordered
``jax.experimental.io_callback`` whose argument is the *unbatched* step counter, so under ``jax.vmap``
the whole ensemble drives one bar and under ``jax.jit`` it updates while the program runs. With
``progress=False`` (the default) nothing is added to the program. tqdm is imported only when a bar is
requested (``pip install tqdm``). Under ``jax.grad`` JAX may drop the callback (no bar, same numbers).
"""

from __future__ import annotations

#: about this many updates per run. Each is one host callback, which on a 2-core CPU costs ~1-3 ms
#: (4096 pendulums x 10^4 steps: ~10% slower with 100 updates, within noise with 40; bench_ux.py)
UPDATES = 40


def chunk(steps: int) -> int:
    """Steps between two updates of the bar."""
    return max(1, -(-steps // UPDATES))


class _Bar:
    """The host side: opens a tqdm bar on the first update of a run and closes it at the total."""

    def __init__(self, total: int, options: dict):
        self.total, self.options, self.bar = total, options, None

    def __call__(self, n):
        n = int(n)
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="step", **self.options)
        self.bar.update(n - self.bar.n)
        if n >= self.total:
            self.bar.close()
            self.bar = None


def ticker(progress, total: int, desc: str = "tpjax"):
    """``tick(n_done)`` for use in traced code, or None when ``progress`` is off.

    ``progress``: False/None (off), True (a tqdm bar on stderr), or a dict of tqdm options, e.g.
    ``{"file": sys.stdout, "desc": "pendulums"}``.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        options = {}
    elif isinstance(progress, dict):
        options = dict(progress)
    else:
        raise TypeError(f"progress must be True, False or a dict of tqdm options, got {type(progress).__name__}")
    try:
        import tqdm  # noqa: F401
    except ImportError as e:
        raise ImportError("progress=True needs tqdm: pip install tqdm (or pip install 'tpjax[progress]')") from e
    options.setdefault("desc", desc)
    bar = _Bar(total, options)

    def tick(n_done):
        import jax.numpy as jnp
        from jax.experimental import io_callback

        io_callback(bar, None, jnp.asarray(n_done, jnp.int32), ordered=True)

    return tick
