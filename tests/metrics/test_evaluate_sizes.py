"""`evaluate` with a synthetic set of another size: resized once to the real size, one notice."""

from __future__ import annotations

import json

import numpy as np

from synthmed.data.phantom import CLASS_NAMES, make_phantom
from synthmed.metrics.evaluate import evaluate
from synthmed.metrics.inputs import load_images, match_size


def test_smaller_synthetic_set_is_resized_once_with_a_recorded_notice(
        phantom_dataset, tiny_extractor, fake_set_writer, tmp_path):
    ph = make_phantom(n=10, size=28, seed=5)  # 28 px (MedMNIST) set, 32 px real data
    syn = fake_set_writer(tmp_path / "s28", ph["images"][:, None], ph["labels"],
                          list(CLASS_NAMES))
    evaluate(f"{phantom_dataset}:val+test", syn, extractor=tiny_extractor,
             metrics="fid,ms_ssim,privacy", n_bootstrap=0, ms_ssim_n_pairs=10, plots=False,
             out=tmp_path / "ev")
    doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    notices = [w for w in doc["warnings"] if "resized from" in w]
    assert notices == ["synthetic images resized from 28x28 to the real images' 32x32 "
                       f"({doc['synthetic']['resize']}) before every metric"]
    assert doc["synthetic"]["resized_from"] == [28, 28] and doc["synthetic"]["size"] == [32, 32]
    assert "resized_from" not in doc["real"]
    assert doc["ms_ssim"] is not None and doc["copy_rate"] is not None


def test_match_size_keeps_a_same_size_set_and_resizes_subsets_consistently(phantom_dataset,
                                                                             fake_synthetic):
    real = load_images(f"{phantom_dataset}:test", "test")
    same = load_images(fake_synthetic, "all")
    assert match_size(same, real) == (same, None)
    small = same.subset(np.ones(len(same), bool))
    small.images = small.images[:, :, ::2, ::2]  # 16 px
    resized, notice = match_size(small, real)
    assert resized.images.shape[1:] == (1, 32, 32) and resized.images.dtype == np.uint8
    assert resized.subset(resized.labels >= 0).resized_from == [16, 16]
    assert "from 16x16" in notice
