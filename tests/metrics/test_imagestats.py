"""The fixed statistics block of the domain extractor: shapes, what it measures, train-only fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from synthmed.metrics import domain
from synthmed.metrics.domain import DomainFeatureNet
from synthmed.metrics.imagestats import (
    GROUPS,
    N_BANDS,
    PER_CHANNEL,
    SCALE_FLOOR,
    block_dim,
    fit_block,
    image_stats,
    layout_columns,
    layout_radius,
    stats_dim,
)


def _offsets() -> dict[str, slice]:
    out, start = {}, 0
    for name, width in GROUPS.items():
        out[name] = slice(start, start + width)
        start += width
    return out


def _textured(n: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-1, 1, (n, 1, size, size))).float()


def test_shapes_per_channel_and_size():
    for c, size in [(1, 28), (3, 64), (1, 17)]:
        s = image_stats(torch.rand(4, c, size, size) * 2 - 1)
        assert s.shape == (4, c * PER_CHANNEL) == (4, stats_dim(c)) and s.dtype == torch.float32
        assert torch.isfinite(s).all()


def test_blur_lowers_high_band_energy_and_gradients():
    x = _textured()
    blurred = torch.from_numpy(gaussian_filter(x.numpy(), sigma=(0, 0, 1.5, 1.5))).float()
    sx, sb = image_stats(x), image_stats(blurred)
    spec, grad = _offsets()["spectrum"], _offsets()["gradient"]
    high = slice(spec.start + N_BANDS // 2, spec.stop)
    assert (sb[:, high] < sx[:, high] - 1.0).all()  # over 10x less energy in the upper bands
    assert (sb[:, spec.start] > sb[:, spec.stop - 1]).all()  # blur: energy falls with frequency
    assert (sb[:, grad] < sx[:, grad]).all()


def test_flat_image_has_zero_texture_stats_and_its_grey_level():
    s = image_stats(torch.full((2, 1, 28, 28), 0.25), log_scale=False)
    o = _offsets()
    assert torch.allclose(s[:, o["gradient"]], torch.zeros(2, GROUPS["gradient"]))
    assert torch.allclose(s[:, o["local_sd"]], torch.zeros(2, GROUPS["local_sd"]), atol=1e-6)
    logged = image_stats(torch.full((2, 1, 28, 28), 0.25))  # the default: log10(v + 1e-4)
    floor = float(np.log10(SCALE_FLOOR))
    assert torch.allclose(logged[:, o["gradient"]], torch.full((2, GROUPS["gradient"]), floor))
    assert torch.allclose(logged[:, o["local_sd"]], torch.full((2, GROUPS["local_sd"]), floor),
                          atol=1e-3)
    assert torch.allclose(logged[:, :o["gradient"].start], s[:, :o["gradient"].start])
    assert (s[:, o["spectrum"]] <= -7.9).all()  # only the floor: no energy off DC
    assert torch.allclose(s[:, o["intensity"]][:, :5], torch.full((2, 5), 0.25))
    lay = s[:, o["layout"]]
    assert lay[:, 0].abs().min() > 0 and torch.allclose(lay[:, 1:], torch.zeros_like(lay[:, 1:]),
                                                        atol=1e-5)


def test_layout_sees_position_that_the_other_statistics_do_not():
    x = torch.full((1, 1, 32, 32), -1.0)
    x[..., :8, :8] = 1.0
    moved = torch.flip(x, dims=(3,))
    o = _offsets()
    a, b = image_stats(x), image_stats(moved)
    assert torch.allclose(a[:, :o["layout"].start], b[:, :o["layout"].start], atol=1e-5)
    assert not torch.allclose(a[:, o["layout"]], b[:, o["layout"]], atol=1e-3)


def test_statistics_block_is_standardized_on_the_training_images_only():
    torch.manual_seed(0)
    net = DomainFeatureNet(feature_pool="multiscale", image_stats=True).eval()
    assert net.feature_dim == net.learned_dim + block_dim(1) == 128 + PER_CHANNEL + 1
    train = _textured(40, seed=1)
    domain.standardize_features(net, train)
    with torch.no_grad():
        f = net(train).double()
    learned, stats = f[:, :net.learned_dim], f[:, net.learned_dim:]
    assert stats.mean(0).abs().max() < 1e-3  # centred on the training images
    ratio = float(stats.var(0).sum() / learned.var(0).sum())
    assert abs(ratio - domain.STATS_WEIGHT) < 0.01 * domain.STATS_WEIGHT
    shift = net.stat_shift.clone()
    other = torch.full((40, 1, 32, 32), 0.5)  # held-out images do not move the fit
    with torch.no_grad():
        net(other)
    assert torch.equal(net.stat_shift, shift)
    # the fit follows the training images: other training images give another shift
    domain.standardize_features(net, _textured(40, seed=1) * 0.5)
    assert not torch.allclose(net.stat_shift, shift)


def test_trained_extractor_fits_the_statistics_on_its_training_split(tiny_extractor,
                                                                     phantom_dataset):
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.features import prepare_images

    payload = torch.load(tiny_extractor, weights_only=True)
    assert payload["config"]["image_stats"] and payload["config"]["stats_weight"] == 4.0
    shift = payload["state_dict"]["stat_shift"].double()
    data = PreparedDataset(phantom_dataset)
    size = tuple(payload["config"]["image_size"])

    def mean_stats(rows):
        x = prepare_images(np.asarray(data.images[rows]), size=size, channels=1,
                           input_range="model")
        return image_stats(x).double().mean(0)

    assert payload["config"]["stats_version"] == 2 and len(shift) == PER_CHANNEL + 1
    assert torch.allclose(shift[:PER_CHANNEL], mean_stats(data.indices("train")), atol=1e-4)
    others = np.flatnonzero(data.splits != "train")
    assert len(others) > 0 and not torch.allclose(shift[:PER_CHANNEL], mean_stats(others),
                                                  atol=1e-3)


def _smooth_fields(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """Random smooth images: correlated statistics, like real ones."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(size=(n, 1, size, size)), sigma=(0, 0, 1.5, 1.5))
    x = x / x.std(axis=(1, 2, 3), keepdims=True) * rng.uniform(0.1, 0.4, (n, 1, 1, 1))
    return torch.from_numpy(x).float().clamp(-1, 1)


def test_block_is_whitened_on_the_training_images():
    """Distances in the block are Mahalanobis distances: on its (many) training images the block's
    covariance is close to a multiple of the identity, though the raw statistics are strongly
    correlated (contrast moves every one of them)."""
    x = _smooth_fields(600, seed=0)
    raw = image_stats(x).double()
    alive = raw.std(0) > 1e-6
    corr = torch.corrcoef(raw[:, alive].T).abs()
    assert corr[~torch.eye(len(corr), dtype=torch.bool)].max() > 0.9
    buf = fit_block(x, target_var=10.0)
    s = torch.cat([raw.float(), layout_radius(raw.float(), buf["layout_shift"],
                                              buf["layout_proj"])], 1)
    z = ((s - buf["stat_shift"]) * buf["stat_scale"]) @ buf["stat_proj"]
    assert float(z.double().var(0).sum()) == pytest.approx(10.0, rel=1e-3)
    cov = torch.cov(z.double().T)
    keep = cov.diagonal() > 1e-6
    cov = cov[keep][:, keep]
    off = cov - torch.diag(cov.diagonal())
    assert float(off.abs().max()) < 0.2 * float(cov.diagonal().mean())
    moved = fit_block(x * 0.5, target_var=10.0)  # the fit follows the training images
    assert not torch.allclose(moved["stat_shift"], buf["stat_shift"])


def test_the_mean_image_is_atypical():
    """Real images lie at about sqrt(D) from their mean layout, never at it; the pixel-wise mean
    image (what a generator that regresses to the average makes) lies at it, so its typicality
    radius is below every training image's (Nalisnick et al., 2019)."""
    x = _smooth_fields(200, seed=1) + torch.linspace(-0.3, 0.3, 16).view(1, 1, 1, 16)
    buf = fit_block(x, target_var=1.0)
    s = image_stats(x)
    r = layout_radius(s, buf["layout_shift"], buf["layout_proj"])[:, 0]
    mean = x.mean(0, keepdim=True)
    r_mean = layout_radius(image_stats(mean), buf["layout_shift"], buf["layout_proj"])[0, 0]
    assert float(r_mean) < float(r.min()) - 0.3  # log10: over 2x closer than any real image
    assert len(layout_columns(3)) == 3 * GROUPS["layout"] and block_dim(3) == stats_dim(3) + 1


def test_quantiles_match_torch_quantile():
    from synthmed.metrics.imagestats import _quantiles

    v = torch.rand(5, 999, dtype=torch.float64)
    qs = (0.05, 0.5, 0.9, 0.99)
    expect = torch.quantile(v, torch.tensor(qs, dtype=torch.float64), dim=1).T
    assert torch.allclose(_quantiles(v, qs), expect, rtol=0, atol=1e-12)
