"""Preprocessing: shapes, normalization, denoising, bit depth, and option errors."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.preprocess import (
    Preprocessor,
    bilateral_filter,
    describe_short,
    parse_window,
    to_channels,
)
from synthmed.errors import DataError

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 3)])
@pytest.mark.parametrize("size", [8, 16, 40])
def test_resize_shapes_and_binary_masks(shape, size):
    img = RNG.integers(0, 256, shape, dtype=np.uint8)
    mask = np.zeros(shape[:2], np.uint8)
    mask[5:15, 5:25] = 1
    out, m = Preprocessor(size=size)(img, mask)
    channels = 3 if len(shape) == 3 else 1
    assert out.shape == (channels, size, size) and out.dtype == np.uint8
    assert m.shape == (size, size) and set(np.unique(m)) == {0, 1}


def test_keep_aspect_pads_to_square_with_zeros():
    img = np.full((10, 20), 200, np.uint8)
    mask = np.ones((10, 20), np.uint8)
    out, m = Preprocessor(keep_aspect=True)(img, mask)
    assert out.shape == (1, 20, 20)
    assert (out[0, :5] == 0).all() and (out[0, 5:15] == 200).all() and (out[0, 15:] == 0).all()
    assert m[:5].sum() == 0 and m[5:15].all()
    stretched, _ = Preprocessor(size=8)(img)
    assert (stretched == 200).all()


def test_no_size_keeps_native_shape_and_uint8_values():
    img = RNG.integers(0, 256, (9, 7), dtype=np.uint8)
    out, m = Preprocessor()(img)
    np.testing.assert_array_equal(out[0], img)
    assert m is None


@pytest.mark.parametrize(("dtype", "bit_depth", "expected"), [
    (np.uint8, 8, "none"), (np.uint16, 16, "none"), (np.uint16, 8, "minmax"),
    (np.float32, 8, "minmax"), (np.int16, 16, "minmax"),
])
def test_auto_normalization_choice(dtype, bit_depth, expected):
    pre = Preprocessor(bit_depth=bit_depth)
    pre(np.arange(12, dtype=dtype).reshape(3, 4))
    assert dict(pre.resolved) == {expected: 1}


def test_none_scales_between_bit_depths():
    img16 = np.array([[0, 257, 65535]], np.uint16)
    np.testing.assert_array_equal(Preprocessor(normalize="none")(img16)[0][0], [[0, 1, 255]])
    out16 = Preprocessor(normalize="none", bit_depth=16)(img16)[0]
    assert out16.dtype == np.uint16
    np.testing.assert_array_equal(out16[0], img16)
    img8 = np.array([[0, 1, 255]], np.uint8)
    np.testing.assert_array_equal(Preprocessor(bit_depth=16)(img8)[0][0], [[0, 257, 65535]])


def test_minmax_percentile_zscore():
    x = np.linspace(-100, 300, 1000, dtype=np.float32).reshape(20, 50)
    mm = Preprocessor(normalize="minmax")(x)[0]
    assert mm.min() == 0 and mm.max() == 255
    x_out = x.copy()
    x_out[0, 0] = 1e6  # one outlier: percentile clipping ignores it
    pc = Preprocessor(normalize="percentile", percentiles=(1, 99))(x_out)[0]
    assert (pc == 255).mean() < 0.05 and np.median(pc) > 100
    assert np.median(Preprocessor(normalize="minmax")(x_out)[0]) == 0
    z = Preprocessor(normalize="zscore")(x)[0]
    assert abs(int(np.median(z)) - 128) <= 2
    const = Preprocessor(normalize="minmax")(np.full((4, 4), 7.0))[0]
    assert (const == 0).all()


def test_ct_window_in_hu():
    hu = np.array([[-1000, -200, 0, 200, 1000]], np.float32)
    out = Preprocessor(window="0,400")(hu)[0][0, 0]
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255])
    assert parse_window([40, 400]) == (40.0, 400.0)


def test_gaussian_and_median_denoise():
    flat = np.full((32, 32), 0.5, np.float32) + RNG.normal(0, 0.1, (32, 32)).astype(np.float32)
    img = (np.clip(flat, 0, 1) * 255).astype(np.uint8)
    for kw in ({"filter": "gaussian", "filter_sigma": 1.5}, {"filter": "median", "filter_size": 5}):
        out = Preprocessor(**kw)(img)[0]
        assert out.std() < img.std() / 2
    salt = np.full((9, 9), 100, np.uint8)
    salt[4, 4] = 255
    assert (Preprocessor(filter="median")(salt)[0] == 100).all()


def test_bilateral_keeps_edges_better_than_gaussian():
    step = np.zeros((24, 24), np.float32)
    step[:, 12:] = 1.0
    noisy = np.clip(step + RNG.normal(0, 0.05, step.shape), 0, 1).astype(np.float32)
    bil = bilateral_filter(noisy, sigma_space=2.0, sigma_color=0.1)
    gau = Preprocessor(filter="gaussian", filter_sigma=2.0, normalize="none").denoise(noisy)
    edge_bil = bil[:, 12].mean() - bil[:, 11].mean()
    edge_gau = gau[:, 12].mean() - gau[:, 11].mean()
    assert edge_bil > 0.8 > edge_gau
    assert bil[:, :8].std() < noisy[:, :8].std()
    np.testing.assert_allclose(bilateral_filter(np.full((6, 6), 0.3, np.float32),
                                                sigma_space=1, sigma_color=0.1), 0.3, rtol=1e-6)
    rgb = Preprocessor(filter="bilateral")(RNG.integers(0, 256, (10, 10, 3), dtype=np.uint8))[0]
    assert rgb.shape == (3, 10, 10)


def test_to_channels():
    gray = RNG.integers(0, 256, (1, 4, 4), dtype=np.uint8)
    rgb = to_channels(gray, 3)
    assert rgb.shape == (3, 4, 4)
    np.testing.assert_array_equal(to_channels(rgb, 1), gray)
    red = np.zeros((3, 2, 2), np.uint8)
    red[0] = 255
    assert to_channels(red, 1).max() == 76  # ITU-R 601 luma of pure red


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": 0}, "--size 0"), ({"size": -3}, "positive"),
    ({"bit_depth": 12}, "--bit-depth 12"), ({"normalize": "max"}, "--normalize 'max'"),
    ({"filter": "wiener"}, "--filter 'wiener'"), ({"window": "40"}, "--window"),
    ({"window": "a,b"}, "--window"), ({"normalize": "window"}, "go together"),
    ({"window": "40,400", "normalize": "minmax"}, "go together"),
    ({"percentiles": (99, 1)}, "--percentiles"), ({"filter_size": 4}, "--filter-size 4"),
    ({"filter_sigma": 0}, "--filter-sigma"), ({"sigma_color": -1}, "--sigma-color"),
])
def test_option_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        Preprocessor(**kwargs)


def test_describe_records_every_step():
    pre = Preprocessor(size=16, keep_aspect=True, filter="bilateral", normalize="percentile",
                       bit_depth=16)
    pre(RNG.integers(0, 256, (20, 10), dtype=np.uint8))
    d = pre.describe()
    assert d["resize"]["size"] == [16, 16] and d["keep_aspect"] is True
    assert d["filter"]["name"] == "bilateral" and "sigma_color" in d["filter"]
    assert d["normalize"] == {"method": "percentile", "per_image": {"percentile": 1},
                              "percentiles": [0.5, 99.5]}
    assert d["bit_depth"] == 16
    text = describe_short(d)
    assert "resize 16x16" in text and "bilateral" in text and "16-bit" in text


@pytest.mark.parametrize("shape", [(31, 17), (2, 2), (1, 5)])
def test_fast_median_matches_scipy(shape):
    from scipy import ndimage

    from synthmed.data.preprocess import median3

    x = RNG.integers(0, 6, shape).astype(np.float32)  # many ties
    np.testing.assert_array_equal(median3(x), ndimage.median_filter(x, 3, mode="reflect"))
