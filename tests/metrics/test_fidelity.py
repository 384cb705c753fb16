"""FID, KID, IS, PRDC and MS-SSIM against closed forms and reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from synthmed.metrics.fidelity import (
    fid,
    frechet_distance,
    inception_score,
    kid,
    mmd2_from_kernels,
    mmd2_unbiased,
    ms_ssim_pairs,
    pairwise_distances,
    poly_kernel,
    prdc,
    prdc_from_distances,
)


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_a_set_against_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 16))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    # commuting covariances: FD = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_for_full_covariances():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = _random_cov(rng, 8), _random_cov(rng, 8)
    ref = (np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2)
           - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-8)


def test_fid_of_samples_converges_to_the_gaussians_closed_form():
    rng = np.random.default_rng(2)
    d = 4
    m1, m2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    x = rng.multivariate_normal(m1, s1, 20000)
    y = rng.multivariate_normal(m2, s2, 20000)
    assert fid(x, y) == pytest.approx(frechet_distance(m1, s1, m2, s2), rel=0.05)


def test_fid_is_nonnegative_for_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    assert fid(rng.normal(size=(5, 32)), rng.normal(size=(6, 32))) >= 0.0


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    draws = [mmd2_unbiased(rng.normal(size=(60, 8)), rng.normal(size=(60, 8))) for _ in range(60)]
    assert abs(np.mean(draws)) < 3 * np.std(draws) / np.sqrt(len(draws))
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    mean, std, size = kid(a, b, subsets=50, seed=0)
    assert size == 200 and std > 0
    shifted, _, _ = kid(a, b + 1.0, subsets=50, seed=0)
    assert shifted > 10 * max(abs(mean), std)


def test_biased_mmd_would_fail_the_unbiasedness_check():
    # the V-statistic (diagonal kept) is positive on average: the test above can fail
    rng = np.random.default_rng(4)
    draws = []
    for _ in range(60):
        x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
        draws.append(poly_kernel(x, x).mean() + poly_kernel(y, y).mean()
                     - 2 * poly_kernel(x, y).mean())
    assert np.mean(draws) > 3 * np.std(draws) / np.sqrt(len(draws))


def test_mmd_matches_torchmetrics_poly_mmd():
    """Reference check only: torchmetrics is a dev extra, nothing in src imports it."""
    import torch

    poly_mmd = pytest.importorskip("torchmetrics.image.kid").poly_mmd

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(50, 6)), rng.normal(0.3, 1.0, size=(50, 6))
    ref = poly_mmd(torch.from_numpy(a), torch.from_numpy(b), degree=3, gamma=None, coef=1.0)
    assert mmd2_unbiased(a, b) == pytest.approx(float(ref), rel=1e-9)


def test_mmd_with_bootstrap_counts_leaves_out_pairs_of_copies():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(15, 3))
    i, j = rng.integers(0, 20, 20), rng.integers(0, 15, 15)  # resamples with copies
    kxx, kyy, kxy = poly_kernel(x, x), poly_kernel(y, y), poly_kernel(x, y)

    def masked(k, ids):  # mean over pairs of distinct original samples
        keep = ids[:, None] != ids[None, :]
        return k[np.ix_(ids, ids)][keep].mean()

    expected = masked(kxx, i) + masked(kyy, j) - 2 * kxy[np.ix_(i, j)].mean()
    got = mmd2_from_kernels(kxx, kyy, kxy, cx=np.bincount(i, minlength=20),
                            cy=np.bincount(j, minlength=15))
    assert got == pytest.approx(expected, rel=1e-10)
    assert mmd2_from_kernels(kxx, kyy, kxy) == pytest.approx(mmd2_unbiased(x, y), rel=1e-12)


def test_inception_score_is_one_for_constant_predictions():
    probs = np.tile([0.2, 0.5, 0.3], (100, 1))
    mean, std = inception_score(probs)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_inception_score_is_k_for_uniform_one_hot(k):
    probs = np.tile(np.eye(k), (10 * 7, 1))  # every split holds each class equally often
    mean, _ = inception_score(probs, shuffle=False)
    assert mean == pytest.approx(k, rel=1e-9)
    shuffled, _ = inception_score(probs)  # shuffled splits: still close to k
    assert shuffled == pytest.approx(k, rel=0.1)


def test_inception_score_splits_ten_ways_and_shuffles_classwise_sets():
    probs = np.repeat(np.eye(2), 50, axis=0)  # written class by class, like a synthetic set
    assert inception_score(probs)[0] > 1.5
    assert inception_score(probs, shuffle=False)[0] == pytest.approx(1.0)


def test_prdc_from_distances_equals_the_prdc_package():
    rng = np.random.default_rng(6)
    r, f = rng.normal(size=(60, 5)), rng.normal(0.5, 1.0, size=(50, 5))
    ref = prdc(r, f, k=5)
    ours = prdc_from_distances(pairwise_distances(r), pairwise_distances(f),
                               pairwise_distances(r, f), 5)
    np.testing.assert_allclose(ours, [ref[k] for k in ("precision", "recall", "density",
                                                        "coverage")], atol=1e-6)


def test_prdc_is_perfect_for_identical_sets():
    r = np.random.default_rng(7).normal(size=(40, 4))
    out = prdc(r, r, k=3)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0


def test_poly_kernel_shape():
    assert poly_kernel(np.ones((3, 4)), np.ones((5, 4))).shape == (3, 5)


@pytest.mark.parametrize("size", [16, 28, 32, 64])
def test_ms_ssim_works_at_small_sizes_and_is_one_for_identical_images(size):
    img = np.random.default_rng(8).integers(0, 256, (1, 1, size, size), dtype=np.uint8)
    same = np.repeat(img, 4, axis=0)
    mean, _, pairs = ms_ssim_pairs(same, n_pairs=6)
    assert pairs == 6 and mean == pytest.approx(1.0, abs=1e-5)
    noise = np.random.default_rng(9).integers(0, 256, (8, 1, size, size), dtype=np.uint8)
    assert ms_ssim_pairs(noise, n_pairs=6)[0] < 0.5
    assert ms_ssim_pairs(img) is None
