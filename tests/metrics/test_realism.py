"""The realism judge: classifier two-sample test (C2ST) and spectral artefacts (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from synthmed.errors import SynthmedError
from synthmed.metrics.realism import auc_delong, c2st, image_groups, real_floor, realism_block
from synthmed.metrics.realism_features import realism_features
from synthmed.metrics.sanity import checkerboard, gaussian_blur
from synthmed.metrics.spectral import spectral_artefacts


def smooth_images(n: int, seed: int, size: int = 16, shift: float = 0.0) -> np.ndarray:
    """Textured random images (smoothed noise plus speckle), uint8 (n, 1, size, size)."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(0, 1, (n, size, size)), (0, 2, 2)) * 120
    x = 120 + base + rng.normal(0, 12, base.shape) + shift
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)[:, None]


def test_delong_auc_matches_counting_and_ties():
    auc, lo, hi = auc_delong(np.array([3.0, 2.0, 1.0]), np.array([1.0, 0.0]))
    assert auc == pytest.approx((2 + 2 + 1.5) / 6)
    assert lo <= auc <= hi
    assert auc_delong(np.ones(5), np.ones(5))[0] == 0.5


def test_identical_distributions_interval_covers_half():
    """A calibration check: 40 seeded repeats of two samples of one distribution."""
    covered = 0
    for seed in range(40):
        real, synth = smooth_images(40, 2 * seed), smooth_images(40, 2 * seed + 1)
        r = c2st(real, synth, seed=seed, permutations=0)
        covered += r.ci_low <= 0.5 <= r.ci_high
    assert covered >= 36


def test_mean_shift_of_half_a_pixel_sd_is_found():
    rng = np.random.default_rng(0)
    real = np.clip(rng.normal(128, 20, (60, 1, 16, 16)), 0, 255).astype(np.uint8)
    synth = np.clip(rng.normal(138, 20, (60, 1, 16, 16)), 0, 255).astype(np.uint8)
    r = c2st(real, synth, seed=0, permutations=20)
    assert r.auc > 0.9 and r.ci_low > 0.5
    assert r.p_value == pytest.approx(1 / 21)


def test_png_round_trip_does_not_leak(tmp_path):
    """Real images written as PNG and read back vs the same images from .npz: nothing to find."""
    from synthmed.metrics.folders import load_folder, load_npz

    imgs = smooth_images(40, 0, size=20)
    (tmp_path / "png").mkdir()
    for i, img in enumerate(imgs):
        Image.fromarray(img[0]).save(tmp_path / "png" / f"{i:03d}.png")
    np.savez(tmp_path / "set.npz", images=imgs[:, 0])
    a, b = load_folder(tmp_path / "png"), load_npz(tmp_path / "set.npz")
    r = c2st(b.images, a.images, seed=0, permutations=0)
    assert r.auc == pytest.approx(0.5, abs=0.05)


def test_identical_images_never_straddle_folds():
    """A synthetic set of copies of the real images: every copy is grouped with its original."""
    real = smooth_images(40, 3)
    groups = image_groups(real, real.copy())
    assert (groups[:40] == groups[40:]).all()
    assert c2st(real, real.copy(), seed=0, permutations=0).auc == pytest.approx(0.5)


def test_counts_and_sizes_matched_and_every_image_scored():
    real, synth = smooth_images(30, 0), smooth_images(80, 1, size=24)
    r = c2st(real, synth, seed=1, permutations=0)
    assert (r.n_real, r.n_synthetic) == (30, 30)
    assert r.scores.shape == (80,) and np.isfinite(r.scores).all()
    assert ((r.scores >= 0) & (r.scores <= 1)).all()


def test_same_seed_same_result_and_errors():
    real, synth = smooth_images(30, 0), smooth_images(30, 1, shift=10)
    a, b = c2st(real, synth, seed=4, permutations=5), c2st(real, synth, seed=4, permutations=5)
    assert a.auc == b.auc and a.p_value == b.p_value and (a.scores == b.scores).all()
    with pytest.raises(SynthmedError, match="at least"):
        c2st(real[:5], synth[:5])
    with pytest.raises(SynthmedError, match="channel"):
        c2st(real, np.repeat(synth, 3, axis=1))


def test_features_are_flip_invariant():
    x = smooth_images(10, 5, size=20)
    np.testing.assert_allclose(realism_features(x), realism_features(x[..., ::-1].copy()),
                               atol=1e-9)


def test_realism_block_floor_and_per_class():
    real, synth = smooth_images(60, 0), smooth_images(60, 1, shift=25)
    labels = np.repeat([0, 1], 30)
    block, scores = realism_block(real, synth, seed=0, real_labels=labels, synth_labels=labels,
                                  pairs=[("a", 0, 0), ("b", 1, 1)], permutations=0)
    assert block["auc"] > 0.9 and block["floor"]["auc"] < 0.75
    assert set(block["per_class"]) == {"a", "b"} and block["per_class"]["a"]["auc"] > 0.8
    assert scores.shape == (60,)
    assert real_floor(real[:10]) is None


def test_checkerboard_exceeds_the_real_range_and_held_out_real_does_not():
    real = smooth_images(120, 0, size=28)
    held = smooth_images(120, 1, size=28)
    assert not spectral_artefacts(real, held)["checkerboard_flagged"]
    s = spectral_artefacts(real, checkerboard(held))
    assert s["checkerboard"] > s["checkerboard_real_range"] and s["checkerboard_flagged"]
    assert any("checkerboard" in w for w in s["artefacts"])
    assert len(s["spectrum_real"]) == 1 and len(s["spectrum_real"][0]) == 14
    blurred = spectral_artefacts(real, gaussian_blur(held, 1.0))  # a deficit is named too
    assert blurred["checkerboard"] < -blurred["checkerboard_real_range"]
    assert any("smoothed pixel grain" in w for w in blurred["artefacts"])


def test_evaluate_writes_the_judge(tmp_path):
    """``--metrics c2st,spectral``: no extractor is built; metrics.json, realism.csv, the two
    grids and the spectrum plot are written, and the verdict uses the C2ST."""
    import csv

    from synthmed.data.dataset import write_prepared
    from synthmed.metrics.evaluate import evaluate

    imgs = smooth_images(80, 0, size=20)
    data = write_prepared(tmp_path / "real", images=imgs, labels=np.zeros(80, np.int64),
                          splits=["train"] * 40 + ["test"] * 40, class_names=["x"],
                          groups=[str(i) for i in range(80)])
    np.savez(tmp_path / "syn.npz", images=checkerboard(smooth_images(40, 1, size=20), 8)[:, 0])
    m = evaluate(f"{data}:test", tmp_path / "syn.npz", out=tmp_path / "ev",
                 metrics="c2st,spectral")
    assert m["extractor"] is None and m["realism"]["auc"] > 0.9
    assert m["realism"]["floor"]["auc"] < 0.8 and m["spectral"]["checkerboard_flagged"]
    assert m["verdict"]["fidelity"]["rating"] == "poor"
    assert any("checkerboard artefacts" in w for w in m["warnings"])
    for name in ("realism.csv", "most_real.png", "least_real.png", "spectrum.png"):
        assert (tmp_path / "ev" / name).is_file()
    text = (tmp_path / "ev" / "realism.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == 40 and sorted(int(r["rank"]) for r in rows) == list(range(1, 41))


def test_realism_ladder_flags_every_rung_but_the_flip():
    from synthmed.metrics.realism import realism_ladder

    lad = realism_ladder(smooth_images(120, 0, size=24), seed=0,
                         rungs=("blur1", "checkerboard", "jpeg30", "flip", "constant"))
    flags = {r: row["flagged"] for r, row in lad["rungs"].items()}
    assert flags == {"blur1": True, "checkerboard": True, "jpeg30": True, "flip": False,
                     "constant": None}  # one distinct image: not testable
    assert lad["rungs"]["flip"]["auc"] == pytest.approx(lad["real"]["auc"])


def test_colour_images():
    rgb = np.concatenate([smooth_images(30, s) for s in (0, 1, 2)], axis=1)
    tinted = rgb.copy()
    tinted[:, 0] = np.clip(tinted[:, 0].astype(int) + 30, 0, 255).astype(np.uint8)
    assert c2st(rgb, tinted, seed=0, permutations=0).auc > 0.9
    s = spectral_artefacts(rgb, tinted)
    assert len(s["spectrum_real"]) == 3


def test_grey_real_against_colour_synthetic_is_compared():
    from synthmed.metrics.judge import same_form

    grey, rgb = smooth_images(20, 0), np.repeat(smooth_images(20, 1), 3, axis=1)
    a, b = same_form(grey, rgb)
    assert a.shape[1] == b.shape[1] == 1 and a.dtype == b.dtype == np.uint8
    a16, b16 = same_form(grey.astype(np.uint16) * 257, grey)
    assert a16.dtype == b16.dtype == np.uint8 and (a16 == grey).all()
    assert c2st(*same_form(grey, rgb), permutations=0).n_real == 20
