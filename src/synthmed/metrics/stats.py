"""Bootstrap confidence intervals for two-sample set metrics (FID, KID, PRDC).

Both sets are resampled with replacement, independently (``scipy.stats.bootstrap``,
``paired=False``; percentile, or BCa where its jackknife of n + m evaluations is affordable). The
statistic receives *index* arrays, so metrics that are not vectorizable over resamples (a matrix
square root, k-NN radii) still go through scipy and can recognise copies of one sample.

Honest caveat: resampling repeats images, which shrinks the apparent spread of a set; FID's
bootstrap distribution is therefore shifted upward. The interval measures sampling variability
of the estimate, not the distance to the "true" FID. Seeded: same seed, same interval.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats


def _rng_kwarg() -> str:
    params = inspect.signature(stats.bootstrap).parameters
    return "rng" if "rng" in params else "random_state"


def bootstrap_ci(statistic: Callable[[np.ndarray, np.ndarray], float | np.ndarray], n_a: int,
                 n_b: int, *, n_resamples: int = 100, confidence: float = 0.95,
                 seed: int = 0, method: str = "percentile"
                 ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """CI of ``statistic(idx_a, idx_b)`` over resampled index arrays of two sets.

    ``statistic`` may return a scalar or a vector (one interval per entry). ``method`` is
    ``percentile`` or ``BCa`` (bias-corrected and accelerated: corrects a bootstrap distribution
    that sits off the estimate, as FID's does at small n, at the cost of n_a + n_b extra jackknife
    evaluations). Where BCa is undefined (every resample on one side of the estimate) the
    percentile interval of the same resamples is used. Returns (low, high, method used), or None
    when ``n_resamples`` is 0 or a set has fewer than 2 samples.
    """
    if n_resamples <= 0 or n_a < 2 or n_b < 2:
        return None

    def stat(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.asarray(statistic(i.astype(np.int64), j.astype(np.int64)), dtype=np.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate distributions (e.g. coverage always 1)
        res = stats.bootstrap((np.arange(n_a), np.arange(n_b)), stat, n_resamples=n_resamples,
                              confidence_level=confidence, method=method,
                              vectorized=False, paired=False,
                              **{_rng_kwarg(): np.random.default_rng(seed)})
    low = np.atleast_1d(np.asarray(res.confidence_interval.low, np.float64))
    high = np.atleast_1d(np.asarray(res.confidence_interval.high, np.float64))
    if method != "percentile" and not (np.isfinite(low).all() and np.isfinite(high).all()):
        alpha = (1 - confidence) / 2
        dist = np.atleast_2d(res.bootstrap_distribution)
        low = np.percentile(dist, 100 * alpha, axis=-1)
        high = np.percentile(dist, 100 * (1 - alpha), axis=-1)
        method = "percentile"
    return low, high, method
