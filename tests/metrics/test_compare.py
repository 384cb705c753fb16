"""compare_features: bootstrap CIs are always reported, on a seeded subsample for large sets."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.metrics import compare
from synthmed.metrics.compare import PRDC_KEYS, compare_features
from synthmed.metrics.features import Features

CI_KEYS = ("fid", "kid", *PRDC_KEYS)


def _sets(n_real: int, n_synth: int) -> tuple[Features, Features]:
    rng = np.random.default_rng(0)
    return (Features(rng.normal(size=(n_real, 3)).astype(np.float32)),
            Features(rng.normal(0.3, 1.0, size=(n_synth, 3)).astype(np.float32)))


def _run(real: Features, synth: Features, seed: int = 0) -> tuple[dict, list[str]]:
    return compare_features(real, synth, metrics={"fid", "kid", "prdc"}, seed=seed,
                            n_bootstrap=20, kid_subsets=10)


def test_sets_above_the_cap_get_finite_cis_from_a_recorded_subsample(monkeypatch):
    monkeypatch.setattr(compare, "BOOTSTRAP_MAX_N", 16)
    real, synth = _sets(40, 12)
    out, warnings = _run(real, synth)
    assert out["n_real"] == 40 and out["n_synthetic"] == 12  # point estimates use every image
    assert out["ci_subsample"] == {"n_real": 16, "n_synthetic": 12}
    for key in CI_KEYS:
        low, high = out[f"{key}_ci_low"], out[f"{key}_ci_high"]
        assert isinstance(low, float) and np.isfinite([low, high]).all() and low <= high, key
    assert any("subsample of 16 real and 12 synthetic" in w for w in warnings)
    again, _ = _run(real, synth)
    assert again["fid_ci_low"] == out["fid_ci_low"]  # seeded
    other, _ = _run(real, synth, seed=1)
    assert other["fid_ci_low"] != out["fid_ci_low"]


@pytest.mark.parametrize("cap", [16, 4000])
def test_sets_within_the_cap_are_bootstrapped_whole(monkeypatch, cap):
    monkeypatch.setattr(compare, "BOOTSTRAP_MAX_N", cap)
    out, warnings = _run(*_sets(16, 10))
    assert out["ci_subsample"] is None and not any("subsample" in w for w in warnings)
    assert all(np.isfinite(out[f"{k}_ci_low"]) for k in CI_KEYS)
