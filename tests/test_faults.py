"""Fault cases with a clear error instead of an opaque failure: an ensemble too large for its device
(``tpjax._memory.check_fits``, the pre-flight check the executor calls before allocating)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpjax
from tpjax import _memory


def avals(n, dtype=np.float32):
    s = jax.ShapeDtypeStruct((n,), dtype)
    return (s, s)


def test_counts_state_final_saved_and_carried_bytes():
    q = np.zeros(1000, np.float32)
    state = 2 * 1000 * 4
    cpu = jax.devices("cpu")[0]
    assert _memory.check_fits((q, q), 10, None, cpu) == 2 * state
    assert _memory.check_fits((q, q), 10, 2, cpu) == 2 * state + 6 * state  # 10 // 2 saves + the initial state
    force = jax.ShapeDtypeStruct((1000,), np.float64)
    assert _memory.check_fits(avals(1000), 10, 2, cpu, carried=force) == 8 * state + 8000
    assert _memory.check_fits(avals(1000), 0, 1, cpu) == 3 * state


def test_too_large_raises_a_clear_memory_error(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda device: 2**20)  # a 1 MiB device
    cpu = jax.devices("cpu")[0]
    assert _memory.check_fits(avals(10_000), 10, None, cpu) == 160_000  # fits: returns the count
    with pytest.raises(tpjax.EnsembleTooLarge) as err:
        _memory.check_fits(avals(100_000), 10, 1, cpu)
    e = err.value
    assert isinstance(e, MemoryError)
    needed = 2 * 800_000 + 11 * 800_000
    assert (e.needed, e.available, e.shapes) == (needed, 2**20, [(100_000,), (100_000,)])
    msg = str(e)
    for part in ("float32[100000]", f"{needed:,} bytes", f"{2**20:,} bytes", "10 steps", "11 saved states"):
        assert part in msg
    assert "smaller ensemble" in msg and "shard" in msg and "save less" in msg
    per_system = 13 * 2 * 4  # 13 states (initial, final, 11 saved) of q and p, float32
    assert f"about {2**20 // per_system:,} systems" in msg  # 10,082: how many would fit
    assert _memory.check_fits(avals(2**20 // per_system), 10, 1, cpu) <= 2**20  # and they do
    with pytest.raises(tpjax.EnsembleTooLarge):
        _memory.check_fits(avals(2**20 // per_system + 1), 10, 1, cpu)
    assert _memory.check_fits(avals(30_000), 10, None, cpu) == 480_000  # saving less is a fix too


def test_unknown_capacity_checks_nothing(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda device: None)
    assert _memory.check_fits(avals(2**40), 10, 1, jax.devices("cpu")[0]) == 13 * 2**40 * 8


def test_real_cpu_capacity_refuses_an_impossible_ensemble():
    cpu = jax.devices("cpu")[0]
    phys = _memory.available_bytes(cpu)
    assert phys == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") > 0
    with pytest.raises(tpjax.EnsembleTooLarge, match="float64") as err:
        _memory.check_fits(avals(2**40, np.float64), 10, None, cpu)  # 32 TiB: no machine here has that
    assert err.value.available == phys and err.value.needed == 2 * 2 * 2**40 * 8


class FakeDevice:
    def __init__(self, platform, stats):
        self.platform, self._stats = platform, stats

    def memory_stats(self):
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats

    def __str__(self):
        return f"{self.platform}:0"


def test_available_bytes_reads_the_allocator_limit():
    assert _memory.available_bytes(FakeDevice("gpu", {"bytes_limit": 123, "bytes_in_use": 5})) == 123
    assert _memory.available_bytes(FakeDevice("gpu", None)) is None
    assert _memory.available_bytes(FakeDevice("gpu", RuntimeError("unsupported"))) is None
    with pytest.raises(tpjax.EnsembleTooLarge, match="gpu:0"):
        _memory.check_fits(avals(100), 1, None, FakeDevice("gpu", {"bytes_limit": 100}))


@pytest.mark.parametrize(
    "args, match",
    [
        ((avals(10), -1, None), "steps must be an int >= 0"),
        ((avals(10), 1.5, None), "steps must be an int >= 0"),
        ((avals(10), 10, 0), "save_every must be None or a positive int"),
        ((avals(10), 10, True), "save_every must be None or a positive int"),
        (((1.0, 2.0), 10, None), "every leaf must be an array or an aval"),
    ],
)
def test_bad_arguments_are_named(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _memory.check_fits(*args, jax.devices("cpu")[0])


@pytest.mark.gpu
def test_two_billion_pendulums_do_not_fit_on_the_gpu():
    # 2**31 float64 pendulums saved every step for 10 steps: 13 states (initial, final, 11 saved) of 32 GiB
    # = 416 GiB, more than any one GPU's memory (an H200 has 141 GB). The error must come from the pre-flight
    # check, with the device's real allocator limit.
    gpu = jax.devices("gpu")[0]
    limit = gpu.memory_stats()["bytes_limit"]
    with pytest.raises(tpjax.EnsembleTooLarge) as err:
        _memory.check_fits(avals(2**31, np.float64), 10, 1, gpu)
    e = err.value
    assert e.available == limit and e.needed == 13 * 2 * 2**31 * 8 > limit
    assert "float64[2147483648]" in str(e) and f"{limit:,} bytes" in str(e)


def test_integrate_refuses_an_ensemble_larger_than_the_device():
    """The executors run the pre-flight check: 2**40 float32 pendulums (4 TiB each for q and p) do not fit."""
    import tpjax

    H = lambda q, p: jnp.sum(0.5 * p**2 - jnp.cos(q))
    big = jax.ShapeDtypeStruct((2**40,), jnp.float32)
    with pytest.raises(tpjax.EnsembleTooLarge, match="1099511627776"):
        jax.eval_shape(lambda q, p: tpjax.integrate(H, (q, p), dt=0.01, steps=10), big, big)
