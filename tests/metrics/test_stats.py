"""Bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.metrics.stats import bootstrap_ci


def _diff_of_means(a: np.ndarray, b: np.ndarray):
    return lambda i, j: a[i].mean() - b[j].mean()


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 150)
    low, high, method = bootstrap_ci(_diff_of_means(a, b), len(a), len(b), n_resamples=200,
                                     seed=3)
    assert method == "percentile"
    assert low[0] < a.mean() - b.mean() < high[0]
    assert 0.1 < high[0] - low[0] < 0.6  # about 2 * 1.96 * sqrt(1/200 + 1/150) = 0.42
    again = bootstrap_ci(_diff_of_means(a, b), len(a), len(b), n_resamples=200, seed=3)
    assert again[0][0] == low[0] and again[1][0] == high[0]


def test_bootstrap_ci_handles_vector_statistics_and_bca():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(size=40)
    low, high, _ = bootstrap_ci(lambda i, j: np.array([a[i].mean(), b[j].mean()]), 50, 40,
                                n_resamples=50)
    assert low.shape == (2,) and (low < high).all()
    bca = bootstrap_ci(_diff_of_means(a, b), 50, 40, n_resamples=50, method="BCa")
    assert bca[0][0] < bca[1][0] and bca[2] == "BCa"


def test_bca_falls_back_to_percentile_when_undefined():
    # 0 on the data, > 0 on (almost) every resample, like FID at tiny n: BCa is undefined
    def missing(i: np.ndarray, j: np.ndarray) -> float:
        return 10.0 - len(np.unique(i))

    low, high, method = bootstrap_ci(missing, 10, 10, n_resamples=30, method="BCa")
    assert method == "percentile" and 0 < low[0] <= high[0]


@pytest.mark.parametrize("n_resamples,n_a", [(0, 10), (10, 1)])
def test_bootstrap_ci_is_none_when_not_requested_or_impossible(n_resamples, n_a):
    assert bootstrap_ci(lambda i, j: 0.0, n_a, 10, n_resamples=n_resamples) is None
