"""Feature cache: keyed on content hash, split, preprocessing and weights; atomic; never stale."""

from __future__ import annotations

import numpy as np

from synthmed.metrics.cache import cache_root, feature_key, load_features, save_features
from synthmed.metrics.evaluate import cached_features
from synthmed.metrics.features import FeatureExtractor
from synthmed.metrics.inputs import load_split


class _Counting(FeatureExtractor):
    """Counts its own extract calls (per instance, so reruns and other tests never leak in)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def extract(self, images, *, batch_size=None):
        self.calls += 1
        return super().extract(images, batch_size=batch_size)


def _write(path, images):
    from synthmed.data.dataset import write_prepared

    n = len(images)
    return write_prepared(path, images=images, labels=np.zeros(n, int), splits=["test"] * n,
                          class_names=["a"])


def test_cache_root_follows_argument_then_environment(tmp_path, monkeypatch):
    assert cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("SYNTHMED_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"


def test_feature_key_depends_on_every_part():
    base = feature_key("h", "test", {"size": 64}, "w")
    assert base == feature_key("h", "test", {"size": 64}, "w")
    others = {feature_key("h2", "test", {"size": 64}, "w"),
              feature_key("h", "val", {"size": 64}, "w"),
              feature_key("h", "test", {"size": 32}, "w"),
              feature_key("h", "test", {"size": 64}, "w2")}
    assert base not in others and len(others) == 4


def test_save_and_load_round_trip(tmp_path):
    f, p = np.ones((3, 4), np.float32), np.full((3, 2), 0.5, np.float32)
    save_features("k" * 64, f, p, tmp_path)
    got = load_features("k" * 64, tmp_path)
    assert np.array_equal(got[0], f) and np.array_equal(got[1], p)
    assert load_features("j" * 64, tmp_path) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_changed_dataset_never_reuses_stale_features(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 1, 8, 8), np.uint8)
    ex = _Counting(torch_mean_module(), name="counting", weights_sha256="w")
    first = cached_features(ex, load_split(_write(tmp_path / "d1", images), "test"), tmp_path)
    cached_features(ex, load_split(tmp_path / "d1", "test"), tmp_path)
    assert ex.calls == 1  # second time from the cache
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 0xFF  # one pixel: a new content hash
    second = cached_features(ex, load_split(_write(tmp_path / "d2", changed), "test"), tmp_path)
    assert ex.calls == 2
    assert not np.array_equal(first.features, second.features)


def torch_mean_module():
    import torch

    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)

    return Mean()
