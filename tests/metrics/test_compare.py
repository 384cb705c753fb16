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
    assert other["fid_ci_high"] != out["fid_ci_high"]


@pytest.mark.parametrize("cap", [16, 4000])
def test_sets_within_the_cap_are_bootstrapped_whole(monkeypatch, cap):
    monkeypatch.setattr(compare, "BOOTSTRAP_MAX_N", cap)
    out, warnings = _run(*_sets(16, 10))
    assert out["ci_subsample"] is None and not any("subsample" in w for w in warnings)
    assert all(np.isfinite(out[f"{k}_ci_low"]) for k in CI_KEYS)


def _gauss(n: int, d: int, shift: float, seed: int) -> Features:
    return Features(np.random.default_rng(seed).normal(shift, 1.0, size=(n, d)))


def test_floor_does_not_depend_on_the_synthetic_set():
    """The issue's case: one real set and seed gave floors 1.70, 2.04, 1.84 for 57/78/133."""
    real = _gauss(156, 4, 0.0, 1)
    floors = set()
    for n_synth in (57, 78, 133, 400):
        out, _ = compare_features(real, _gauss(n_synth, 4, 0.2, n_synth),
                                  metrics={"fid", "kid"}, n_bootstrap=0, kid_subsets=10)
        floors.add((out["fid_real_real"], out["kid_real_real_mean"]))
    assert len(floors) == 1


def test_headline_relative_fd_is_the_matched_one():
    """A perfect generator (same distribution, n_synthetic = n_real) scores about 1; the
    full-n ratio carries half the floor's bias and sits near 0.5."""
    rels, fulls = [], []
    for seed in range(4):
        out, _ = compare_features(_gauss(300, 8, 0.0, seed), _gauss(300, 8, 0.0, 100 + seed),
                                  metrics={"fid"}, n_bootstrap=0)
        assert out["relative_fd"] == pytest.approx(out["fid_matched"] / out["fid_real_real"])
        rels.append(out["relative_fd"])
        fulls.append(out["relative_fd_full_n"])
    assert 0.8 < np.mean(rels) < 1.25 and 0.35 < np.mean(fulls) < 0.65


def test_a_synthetic_set_smaller_than_the_floor_half_still_gets_a_headline():
    """100 synthetic images against 624 real ones (half = 312): the matched FD uses 100-image
    samples on both sides, so a perfect generator still scores about 1 and a bad one far more,
    while ``fid_real_real`` stays the synthetic-independent floor."""
    real = _gauss(624, 8, 0.0, 1)
    full, _ = compare_features(real, _gauss(400, 8, 0.0, 2), metrics={"fid"}, n_bootstrap=0)
    assert full["fid_real_real_matched"] is None and full["matched_n"] == 312
    rels = []
    for seed in range(4):
        out, warns = compare_features(real, _gauss(100, 8, 0.0, 10 + seed), metrics={"fid"},
                                      n_bootstrap=0)
        assert out["fid_real_real"] == full["fid_real_real"] and out["matched_n"] == 100
        assert out["relative_fd"] == pytest.approx(out["fid_matched"]
                                                   / out["fid_real_real_matched"])
        assert any("smaller than half" in w for w in warns)
        rels.append(out["relative_fd"])
    assert 0.8 < np.mean(rels) < 1.25
    bad, _ = compare_features(real, _gauss(100, 8, 1.0, 3), metrics={"fid"}, n_bootstrap=0)
    assert bad["relative_fd"] > 4


def test_fid_and_kid_intervals_cover_the_population_value():
    """The old percentile bootstrap covered the population FID 0 of 40 times at n = 156 in 16-d;
    the half-sampling interval of the bias-corrected FID must cover it most of the time (the
    benchmark measures 95 % coverage properly)."""
    from synthmed.metrics.fidelity import frechet_distance

    d, shift = 3, 0.3
    pop = frechet_distance(np.zeros(d), np.eye(d), np.full(d, shift), np.eye(d))
    hits = []
    for rep in range(30):
        out, _ = compare_features(_gauss(120, d, 0.0, rep), _gauss(120, d, shift, 1000 + rep),
                                  metrics={"fid", "kid"}, n_bootstrap=30, kid_subsets=5,
                                  seed=rep)
        assert 0 <= out["fid_ci_low"] <= out["fid_corrected"] <= out["fid_ci_high"]
        assert out["kid_ci_low"] <= out["kid_all_pairs"] <= out["kid_ci_high"]
        hits.append(out["fid_ci_low"] <= pop <= out["fid_ci_high"])
    assert np.mean(hits) >= 0.85
    assert "calibrated" in out["ci_method"]["fid"]
    assert "not calibrated" in compare.CI_METHODS["prdc"]


def test_small_classes_get_null_per_class_values_with_a_reason():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(130, 16))
    labels = np.array([0] * 100 + [1] * 30)
    out = compare.per_class(Features(feats), Features(feats + 0.1), labels, labels,
                            [("big", 0, 0), ("small", 1, 1)], metrics={"fid", "prdc", "kid"},
                            prdc_k=5)
    big, small = out["big"], out["small"]
    assert big["unreliable"] == {} and big["precision"] is not None and big["fid"] is not None
    for key in ("precision", "recall", "density", "coverage", "fid_real_real", "relative_fd"):
        assert small[key] is None and key in small["unreliable"], key
    assert "30 real images < 50" in small["unreliable"]["precision"]
    assert "floor halves of 15 images < feature dimension 16" in small["unreliable"]["relative_fd"]
    assert small["fid"] is not None and small["kid_mean"] is not None  # 30 >= 16
