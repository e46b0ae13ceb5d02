"""Reduced runs of the examples (each well under 30 s on a 2-core CPU).

Full runs (``python -m examples.fit_pendulum_length`` / ``python -m examples.hnn_vs_mlp``) reach
l = 0.9992 vs true 1.0 (rel. error 7.7e-4), and HNN vs MLP rollout RMSE 5.7e-2 vs 6.0e-2 with mean max
energy drift 4.6e-3 vs 1.0e-1 over 500 steps.
"""

import math

import pytest

from examples import fit_pendulum_length, hnn_vs_mlp


def test_fit_pendulum_length_reduced():
    r = fit_pendulum_length.main(steps=200, iters=60, verbose=False)
    est0 = r["history"][0][0]
    assert abs(r["estimate"] - r["true"]) < abs(r["initial"] - r["true"])
    assert abs(r["estimate"] - r["true"]) < abs(est0 - r["true"])
    assert r["final_loss"] < r["initial_loss"] / 10
    assert r["rel_error"] < 0.01


@pytest.mark.slow  # about 18 s on 2 cores: run by `make test-slow` in CI
def test_hnn_vs_mlp_reduced():
    r = hnn_vs_mlp.main(iters=200, n_train=8, n_test=4, data_steps=40, rollout_steps=200, verbose=False)
    for name in ("hnn", "mlp"):
        assert r[name]["loss_final"] < r[name]["loss_initial"] / 10, name
        assert math.isfinite(r[name]["rollout_rmse"]), name
    assert math.isfinite(r["hnn"]["energy_drift"])
    assert r["hnn"]["energy_drift"] < r["mlp"]["energy_drift"]
