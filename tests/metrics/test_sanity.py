"""The sanity ladder: rung images, the FID shortcut, the pass/fail rule, the extractor file and
metrics.json."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.metrics import sanity
from synthmed.metrics.fidelity import fid
from synthmed.metrics.sanity import (
    RUNGS,
    constant_mean,
    gaussian_blur,
    gram_fid,
    judge,
    make_rung,
    run_ladder,
    shuffle_tiles,
    summary_line,
)


def _images(n=40, size=32, seed=0):
    from synthmed.data.phantom import make_phantom

    return make_phantom(n=n, size=size, seed=seed)["images"][:, None]


@pytest.mark.parametrize("name", RUNGS)
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 30, 33)])
def test_rungs_keep_shape_and_dtype(name, shape):
    x = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    out = make_rung(name, x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert not np.array_equal(out, x)


def test_tile_shuffle_is_a_permutation_of_tiles():
    x = np.random.default_rng(0).integers(0, 256, (6, 1, 34, 30)).astype(np.uint8)
    out = shuffle_tiles(x, np.random.default_rng(3))
    th, tw = 34 // 4, 30 // 4
    for i in range(len(x)):
        def tiles(img):
            return sorted(img[0, r * th:(r + 1) * th, c * tw:(c + 1) * tw].tobytes()
                          for r in range(4) for c in range(4))
        assert tiles(out[i]) == tiles(x[i])  # same 16 tiles, another order
        assert not np.array_equal(out[i], x[i])
    assert np.array_equal(out[:, :, 4 * th:], x[:, :, 4 * th:])  # the remainder rows stay
    assert np.array_equal(out[:, :, :, 4 * tw:], x[:, :, :, 4 * tw:])


def test_blur_has_sigma_1_5():
    x = np.zeros((1, 1, 41, 41), np.uint16)
    x[0, 0, 20, 20] = 65535
    out = gaussian_blur(x).astype(np.float64)[0, 0]
    profile = out.sum(axis=0) / out.sum()
    var = (profile * (np.arange(41) - 20) ** 2).sum()
    assert np.sqrt(var) == pytest.approx(sanity.BLUR_SIGMA, abs=0.02)


def test_constant_rung_is_the_mean_image():
    x = np.stack([np.full((1, 8, 8), v, np.uint8) for v in (10, 20, 60)])
    out = constant_mean(x)
    assert (out == 30).all() and out.shape == x.shape


def test_gram_fid_equals_fid():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 80)), rng.normal(size=(25, 80)) * 1.3 + 0.2
    assert gram_fid(a, b) == pytest.approx(fid(a, b), rel=1e-6)
    assert gram_fid(a[:, :5], b[:, :5]) == pytest.approx(fid(a[:, :5], b[:, :5]), rel=1e-9)


def _layout_and_sharpness(x):
    """A hand-made feature space that knows where things are and how sharp they are."""
    x = x[:, 0].astype(float) / 255
    n, h, w = x.shape
    blocks = x.reshape(n, 4, h // 4, 4, w // 4).mean(axis=(2, 4)).reshape(n, -1)
    grad = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2))[:, None]
    return np.concatenate([blocks, 10 * grad], 1)


def test_a_feature_space_that_sees_layout_and_sharpness_passes():
    result = run_ladder(_layout_and_sharpness, _images(), repeats=1)
    assert result["passed"] and set(result["rungs"]) == set(RUNGS)
    assert "passed" in summary_line(result)


@pytest.mark.parametrize("broken", [
    lambda x: np.zeros((len(x), 4)),                                  # constant features
    lambda x: x.reshape(len(x), -1).mean(axis=1, keepdims=True),      # mean grey level only
])
def test_broken_feature_spaces_fail(broken):
    result = run_ladder(broken, _images(), repeats=1)
    assert result["passed"] is False
    assert "FAILED" in summary_line(result)


def test_rule_needs_every_metric_clearly_worse():
    real = {"fid": 1.0, "precision": 0.9, "density": 1.0}
    assert judge(real, {"fid": 2.5, "precision": 0.4, "density": 0.3})
    assert not judge(real, {"fid": 1.5, "precision": 0.1, "density": 0.1})
    assert not judge(real, {"fid": 9.0, "precision": 0.6, "density": 0.1})
    assert not judge(real, {"fid": 9.0, "precision": 0.1, "density": 0.6})
    assert not judge({**real, "fid": 0.0}, {"fid": 0.0, "precision": 0.0, "density": 0.0})


def test_too_few_images_is_not_a_pass():
    result = run_ladder(_layout_and_sharpness, _images()[:5])
    assert result["passed"] is False and "needs at least" in result["reason"]


def test_extractor_file_stores_the_ladder(tiny_extractor):
    from synthmed.metrics.domain import load_domain_extractor

    stored = torch.load(tiny_extractor, weights_only=True)["config"]["sanity"]
    info = load_domain_extractor(tiny_extractor).info["sanity"]
    assert info == stored and isinstance(info["passed"], bool)
    assert set(info["rungs"]) == set(RUNGS)
    assert info["source"].startswith(("held-out (", "train (no held-out split"))
    assert all(set(r) == {"fid", "precision", "density", "passed"} for r in info["rungs"].values())
    assert info["passed"] == all(r["passed"] for r in info["rungs"].values())


def test_metrics_json_reports_a_failed_extractor(phantom_dataset, fake_synthetic, tmp_path):
    from synthmed.metrics.evaluate import evaluate
    from synthmed.metrics.features import FeatureExtractor

    def flat(x):
        return torch.zeros(len(x), 4)

    ladder = run_ladder(lambda x: np.zeros((len(x), 4)), _images(), repeats=1)
    ex = FeatureExtractor(flat, name="domain", input_size=(32, 32), weights_sha256="0",
                          info={"sanity": ladder})
    m = evaluate(f"{phantom_dataset}:val+test", fake_synthetic, extractor=ex, out=tmp_path,
                 metrics="fid", n_bootstrap=0, plots=False)
    assert m["sanity"]["passed"] is False and m["sanity"]["extractor"] == "domain"
    assert set(m["sanity"]["rungs"]) == set(RUNGS) and m["sanity"]["rule"] == sanity.RULE
    assert any("sanity ladder FAILED" in w for w in m["warnings"])
    ex.info.pop("sanity")  # a domain file from before the ladder: unknown, said so
    m = evaluate(f"{phantom_dataset}:val+test", fake_synthetic, extractor=ex, out=tmp_path,
                 metrics="fid", n_bootstrap=0, plots=False)
    assert m["sanity"]["passed"] is None and any("predates" in w for w in m["warnings"])
