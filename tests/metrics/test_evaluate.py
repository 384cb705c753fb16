"""`evaluate` end to end on the tiny phantom fixture and a fake synthetic set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from synthmed.errors import ConfigError, SynthmedError
from synthmed.metrics.evaluate import evaluate, parse_features, parse_metrics
from synthmed.metrics.imagestats import block_dim

DOCUMENTED_KEYS = (
    "fid", "fid_real_real", "relative_fd", "kid_mean", "kid_std", "is_mean", "is_std",
    "precision", "recall", "density", "coverage", "ms_ssim", "copy_rate", "membership_auc",
    "fid_ci_low", "fid_ci_high", "kid_ci_low", "kid_ci_high", "precision_ci_low",
    "coverage_ci_high", "n_real", "n_synthetic", "n_train", "extractor", "weights_sha256",
    "fid_matched", "relative_fd_full_n", "copy_rate_features", "membership_auc_features",
    "fid_corrected", "kid_all_pairs", "verdict", "n_heldout_duplicates", "notices", "sanity",
    "extractors", "per_class", "warnings", "real", "synthetic", "train", "preprocessing",
    "ci_subsample", "matched_n", "fid_real_real_matched", "membership_auc_ci95",
    "membership_auc_ci_unit",
)


@pytest.fixture(scope="module")
def full_run(phantom_dataset, fake_synthetic, tiny_extractor, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    result = evaluate(f"{phantom_dataset}:val+test", fake_synthetic, extractor=tiny_extractor,
                      out=out, n_bootstrap=20, kid_subsets=10, ms_ssim_n_pairs=20,
                      cache_dir=out / "cache")
    return out, result


def test_metrics_json_has_every_documented_key(full_run):
    out, result = full_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result
    missing = [k for k in DOCUMENTED_KEYS if k not in on_disk]
    assert not missing
    assert on_disk["extractor"] == "domain" and len(on_disk["weights_sha256"]) == 64
    assert on_disk["n_real"] == 11 and on_disk["n_synthetic"] == 12 and on_disk["n_train"] == 37
    for key in ("fid", "fid_real_real", "relative_fd", "kid_mean", "kid_std", "is_mean",
                "precision", "density", "coverage", "ms_ssim", "copy_rate", "membership_auc",
                "membership_auc_features", "fid_ci_low", "fid_ci_high"):
        assert isinstance(on_disk[key], float) and np.isfinite(on_disk[key]), key
    assert on_disk["relative_fd"] > 0 and on_disk["kid_std"] >= 0 and on_disk["density"] >= 0
    assert 0.0 <= on_disk["membership_auc_features"] <= 1.0
    for suffix in ("", "_features"):  # the phantom's images carry patients: resampled by patient
        lo, hi = on_disk[f"membership_auc_ci95{suffix}"]
        assert lo <= on_disk[f"membership_auc{suffix}"] <= hi
        assert on_disk[f"membership_auc_ci_unit{suffix}"] == "patient"
    assert on_disk["ci_subsample"] is None  # small sets are bootstrapped whole
    assert on_disk["fid_ci_low"] <= on_disk["fid_ci_high"]
    assert 1.0 <= on_disk["is_mean"] <= 2.0  # two classes
    group = on_disk["extractors"]["domain"]
    assert group["fid"] == on_disk["fid"] and group["feature_dim"] == 128 + block_dim(1)
    assert any("below the feature dimension" in w for w in on_disk["warnings"])


def test_privacy_audit_flags_the_noisy_copies(full_run):
    out, result = full_run
    assert result["n_copies"] >= 6 and result["copy_rate"] >= 0.5
    with open(out / "nearest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert all(r["pixel_near_copy"] == "1" for r in rows[:6])
    assert float(rows[0]["pixel_distance"]) < 0.02


def test_per_class_metrics_and_plots(full_run):
    out, result = full_run
    assert set(result["per_class"]) == {"benign", "malignant"}
    row = result["per_class"]["benign"]
    assert {"fid", "precision", "classifier_agreement", "ms_ssim", "n_synthetic"} <= set(row)
    assert row["precision"] is None and "precision" in row["unreliable"]  # a handful of images
    split = result["real"]["split"]  # issue 19 item 8: the split compared, and which values
    assert any(f"left null, too few real {split} images for them: benign (n_real=" in w
               and "precision" in w for w in result["warnings"]), result["warnings"]
    for name in ("closest_pairs.png", "nearest_distances.png", "per_class.png",
                 "closest_pairs_domain_features.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name


def test_trains_and_reuses_an_extractor_when_none_is_given(phantom_dataset, fake_synthetic,
                                                           tmp_path):
    kw = {"metrics": "fid", "n_bootstrap": 0, "extractor_epochs": 1, "plots": False,
          "cache_dir": tmp_path / "cache"}
    first = evaluate(f"{phantom_dataset}:val", fake_synthetic, out=tmp_path / "a", **kw)
    assert any("--train not given" in w for w in first["warnings"])
    assert first["fid"] is not None and first["kid_mean"] is None and first["copy_rate"] is None
    assert first["extractors"]["domain"]["trained_on"]["split"] == "train"
    second = evaluate(f"{phantom_dataset}:val", fake_synthetic, out=tmp_path / "b", **kw)
    assert second["weights_sha256"] == first["weights_sha256"]


def test_training_set_as_synthetic_is_all_copies(phantom_dataset, tiny_extractor, tmp_path):
    result = evaluate(f"{phantom_dataset}:test", f"{phantom_dataset}:train",
                      extractor=tiny_extractor, metrics=["privacy"], out=tmp_path, plots=False)
    assert result["copy_rate"] == 1.0 and result["membership_auc"] == 1.0
    assert result["copy_rate_features"] == 1.0


def test_overlapping_reference_and_training_splits_disable_the_threshold(
        phantom_dataset, fake_synthetic, tiny_extractor, tmp_path):
    result = evaluate(f"{phantom_dataset}:train", fake_synthetic, train=f"{phantom_dataset}:train",
                      extractor=tiny_extractor, metrics="privacy", out=tmp_path, plots=False)
    assert result["copy_rate"] is None and result["nn_distance_median"] is not None
    assert any("overlaps" in w for w in result["warnings"])


def test_both_extractors_without_inception_weights_keep_the_domain_metrics(
        phantom_dataset, fake_synthetic, tiny_extractor, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    result = evaluate(f"{phantom_dataset}:val+test", fake_synthetic, extractor=tiny_extractor,
                      features="both", metrics="fid", n_bootstrap=0, out=tmp_path, plots=False)
    assert list(result["extractors"]) == ["domain"] and result["fid"] is not None
    assert any("inception features skipped" in w and "pip install" in w
               for w in result["warnings"])
    with pytest.raises(SynthmedError, match="pip install"):
        evaluate(f"{phantom_dataset}:test", fake_synthetic, features="inception", out=tmp_path)


def test_argument_errors_name_the_option():
    with pytest.raises(ConfigError, match="--metrics: unknown metric 'fidd'"):
        parse_metrics("fid,fidd")
    with pytest.raises(ConfigError, match="--features: unknown feature extractor 'dino'"):
        parse_features("domain,dino")
    assert parse_features("both") == ["domain", "inception"]
    assert parse_metrics(None) == {"fid", "kid", "is", "prdc", "ms_ssim", "privacy", "c2st",
                                   "spectral", "labels"}


def test_same_seed_same_numbers_and_unconditional_sets(phantom_dataset, tiny_extractor,
                                                       tmp_path, fake_set_writer):
    from synthmed.data.dataset import PreparedDataset

    data = PreparedDataset(phantom_dataset)
    syn = fake_set_writer(tmp_path / "uncond", data.images[data.indices("train")[:10]],
                               -np.ones(10, int), [])
    kw = {"extractor": tiny_extractor, "metrics": "fid,kid,prdc,is", "n_bootstrap": 10,
          "plots": False}
    a = evaluate(f"{phantom_dataset}:val+test", syn, out=tmp_path / "a", seed=3, **kw)
    b = evaluate(f"{phantom_dataset}:val+test", syn, out=tmp_path / "b", seed=3, **kw)
    keys = ("fid", "fid_ci_low", "fid_real_real", "kid_mean", "kid_ci_high", "precision_ci_low",
            "is_mean")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["per_class"] == {} and a["synthetic"]["class_names"] == []
    assert a["is_mean"] is not None


def test_real_and_train_from_one_split_warn_what_that_changes(phantom_dataset, fake_synthetic,
                                                              tiny_extractor, tmp_path):
    """A tiny test split: --real and --train may both name the train split, with a warning."""
    m = evaluate(f"{phantom_dataset}:train", fake_synthetic, train=f"{phantom_dataset}:train",
                 extractor=tiny_extractor, out=tmp_path, metrics="fid,privacy", n_bootstrap=0,
                 plots=False, cache_dir=tmp_path / "cache")
    assert m["n_real"] == m["n_train"] == 37 and m["fid"] is not None
    assert any("includes the generator's own training images" in w and "memorizing" in w
               for w in m["warnings"])
    assert m["copy_rate"] is None and m["verdict"]["privacy"]["rating"] == "cannot be judged"
    assert any("only 37 images" in w for w in m["warnings"])


def test_feature_audit_with_an_extractor_trained_on_few_members_is_flagged(
        full_run, phantom_dataset, fake_synthetic, tmp_path):
    """The fixture's extractor was trained on the phantom's 37 training images, the audit's
    members: its feature AUC is biased upward (null controls, docs/metrics.md), so it is flagged,
    warned about and left out of the privacy verdict; one trained on val is not."""
    from synthmed.metrics.domain import train_domain_extractor

    _, result = full_run
    assert result["membership_auc_features_biased"] is True
    assert result["extractors"]["domain"]["membership_auc_features_biased"] is True
    assert any("trained on the 37 member images" in w for w in result["warnings"])
    assert "trained on the members" in result["verdict"]["privacy"]["rule"]
    val_ex = train_domain_extractor(phantom_dataset, "val", epochs=1, seed=0,
                                    cache_dir=tmp_path / "c", out=tmp_path / "val.pt")
    other = evaluate(f"{phantom_dataset}:test", fake_synthetic, extractor=val_ex,
                     train=f"{phantom_dataset}:train", metrics="privacy", out=tmp_path / "e",
                     n_bootstrap=5, cache_dir=tmp_path / "c")
    assert other["membership_auc_features_biased"] is False
    assert not any("member images" in w for w in other["warnings"])
