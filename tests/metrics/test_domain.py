"""The domain feature extractor: shapes, determinism, caching, self-supervised mode, file checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.errors import SynthmedError
from synthmed.metrics import domain
from synthmed.metrics.domain import (
    DomainFeatureNet,
    load_domain_extractor,
    nt_xent,
    train_domain_extractor,
)
from synthmed.metrics.imagestats import PER_CHANNEL, block_dim


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_domain_net_shapes(size, channels):
    net = DomainFeatureNet(in_channels=channels, out_channels=3).eval()
    f, logits = net(torch.zeros(2, channels, size, size))
    assert f.shape == (2, net.feature_dim) and logits.shape == (2, 3)
    assert DomainFeatureNet(out_channels=0)(torch.zeros(2, 1, size, size)).shape == (2, 128)
    ms = DomainFeatureNet(in_channels=channels, out_channels=2, feature_pool="multiscale").eval()
    f, logits = ms(torch.zeros(2, channels, size, size))
    assert ms.raw_dim == 16 + 32 + 64 + 128 + 128 + 4 * 128
    assert f.shape == (2, 128) == (2, ms.feature_dim) and logits.shape == (2, 2)


def test_multiscale_features_are_standardized_on_the_training_images():
    torch.manual_seed(0)
    net = DomainFeatureNet(feature_pool="multiscale").eval()
    x = torch.rand(40, 1, 32, 32) * 2 - 1
    domain.standardize_features(net, x)
    with torch.no_grad():
        f = net(x).double()
    weight = torch.cat([torch.full((g,), g ** -0.5) for g in net.groups]).double()
    alive = net.feat_scale > 0
    assert alive.float().mean() > 0.5
    assert f.mean(0).abs().max() < 1e-4  # centred on the training images
    # each group weighs 1/sqrt(width) per unit; PCA keeps the total variance (rank 39 < 128)
    assert float(f.var(0).sum()) == pytest.approx(float((weight[alive] ** 2).sum()), rel=1e-3)
    assert (f[:, 39:].abs() < 1e-4).all()  # axes beyond the training set's rank stay 0


def test_nt_xent_prefers_matching_views():
    z = torch.eye(4)
    assert nt_xent(z, z) < nt_xent(z, z.roll(1, dims=0))


def _sha(path) -> str:
    return torch.load(path, weights_only=True)["sha256"]


def test_training_is_deterministic_per_seed_and_cached(phantom_dataset, tmp_path, monkeypatch):
    a = train_domain_extractor(phantom_dataset, epochs=1, seed=0, cache_dir=tmp_path / "c1",
                               out=tmp_path / "a.pt")
    b = train_domain_extractor(phantom_dataset, epochs=1, seed=0, cache_dir=tmp_path / "c2",
                               out=tmp_path / "b.pt")
    c = train_domain_extractor(phantom_dataset, epochs=1, seed=1, cache_dir=tmp_path / "c2")
    assert _sha(a) == _sha(b) != _sha(c)
    assert c.parent == tmp_path / "c2" / "extractors"

    def boom(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(domain, "_fit", boom)  # same dataset, split and config: reused
    again = train_domain_extractor(phantom_dataset, epochs=1, seed=1, cache_dir=tmp_path / "c2")
    assert again == c and _sha(again) == _sha(c)


def test_default_extractor_is_contrastive_with_posteriors(tiny_extractor, phantom_dataset):
    from synthmed.data.dataset import PreparedDataset

    ex = load_domain_extractor(tiny_extractor)
    assert ex.info["mode"] == "simclr+supervised" and ex.input_size == (32, 32)
    assert ex.info["trained_on"]["split"] == "train"
    out = ex.extract(PreparedDataset(phantom_dataset).images[:5])
    assert out.features.shape == (5, ex.info["feature_dim"]) == (5, 128 + block_dim(1))
    assert block_dim(1) == PER_CHANNEL + 1  # the statistics and the layout's typicality
    assert out.probs.shape == (5, 2)


def test_supervised_mode_keeps_the_old_extractor(phantom_dataset, tmp_path):
    ex = load_domain_extractor(train_domain_extractor(phantom_dataset, epochs=1, mode="supervised",
                                                      cache_dir=tmp_path / "c"))
    assert ex.info["mode"] == "supervised" and ex.info["feature_dim"] == 128
    assert ex.info["sanity"]["rungs"]  # the ladder runs for every mode


def test_unlabelled_data_trains_self_supervised(tmp_path):
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 1, 16, 16), np.uint8)
    path = write_prepared(tmp_path / "unlab", images=images,
                          labels=np.full(12, -1), splits=["train"] * 12, class_names=[])
    ex = load_domain_extractor(train_domain_extractor(path, epochs=1, cache_dir=tmp_path / "c"))
    assert ex.info["mode"] == "simclr"
    out = ex.extract(np.zeros((3, 1, 16, 16), np.uint8))
    assert out.features.shape == (3, 128 + block_dim(1)) and out.probs is None
    with pytest.raises(SynthmedError, match="two or more labelled classes"):
        train_domain_extractor(path, mode="supervised", cache_dir=tmp_path / "c")


def test_bad_extractor_files_are_one_line_errors(tiny_extractor, tmp_path):
    with pytest.raises(SynthmedError, match="not found"):
        load_domain_extractor(tmp_path / "missing.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(SynthmedError, match="not a synthmed domain extractor"):
        load_domain_extractor(tmp_path / "other.pt")
    payload = torch.load(tiny_extractor, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(SynthmedError, match="do not match their sha256"):
        load_domain_extractor(tmp_path / "tampered.pt")


def test_bad_training_arguments(phantom_dataset, tmp_path):
    with pytest.raises(SynthmedError, match="mode 'dino'"):
        train_domain_extractor(phantom_dataset, mode="dino")
    with pytest.raises(SynthmedError, match="epochs 0"):
        train_domain_extractor(phantom_dataset, epochs=0)


def test_files_of_training_version_3_still_load_with_their_linear_block(tiny_extractor,
                                                                         tmp_path):
    """A ``training_version`` 3 file (no ``stats_version``: linear statistics scaled one by one,
    no whitening, no typicality) loads and computes its features as it did."""
    from synthmed.metrics.features import state_dict_sha256
    from synthmed.metrics.imagestats import image_stats

    payload = torch.load(tiny_extractor, weights_only=True)
    cfg = {k: v for k, v in payload["config"].items() if k != "stats_version"}
    cfg["training_version"] = 3
    old = domain.build_domain_net(cfg)
    assert old.stats_version == 1 and old.stats_dim == PER_CHANNEL
    state = {k: v for k, v in payload["state_dict"].items()
             if k not in ("stat_proj", "layout_shift", "layout_proj")}
    state["stat_shift"], state["stat_scale"] = torch.rand(PER_CHANNEL), torch.rand(PER_CHANNEL)
    torch.save({"format": domain.FORMAT, "state_dict": state, "config": cfg,
                "sha256": state_dict_sha256(state)}, tmp_path / "v3.pt")
    ex = load_domain_extractor(tmp_path / "v3.pt")
    x = np.random.default_rng(0).integers(0, 256, (4, 1, 32, 32), np.uint8)
    out = ex.extract(x).features
    assert out.shape == (4, 128 + PER_CHANNEL) == (4, ex.info["feature_dim"])
    xm = torch.from_numpy(x).float() / 255 * 2 - 1
    expect = (image_stats(xm, log_scale=False) - state["stat_shift"]) * state["stat_scale"]
    assert torch.allclose(torch.as_tensor(out[:, 128:]).float(), expect, atol=1e-4)
