"""Compare a synthetic feature set with a real one: every number beside its real-vs-real floor.

FID is biased upward at small n and its scale depends on the extractor, so a bare FID says little.
The real reference set is split into two disjoint random halves A and B: FD(A, B) is the floor
(what two samples of the *same* distribution score at this n). Because FID's bias shrinks with n,
``fid_matched`` = FD(|B| synthetic images, A) has the floor's sample sizes and bias, and the
headline ``relative_fd`` = fid_matched / floor: 1 means "as close to the real images as a second
real sample of the same size". ``relative_fd_full_n`` = FD(all synthetic, all real) / floor is
about 0.5 for a perfect generator when n_synthetic = n_real (the full-n FID carries half the
floor's small-n bias) and is kept only for comparison with older runs. One split is a noisy draw,
so the floor (and the matched FID) is the mean over ``FLOOR_SPLITS`` random splits. The halves
come from their own random stream (seeded by ``seed`` alone), so one real set and seed give the
same floor whatever synthetic set is evaluated.
"""

from __future__ import annotations

import numpy as np

from synthmed.metrics.extractor import Features
from synthmed.metrics.fidelity import (
    fid,
    inception_score,
    kid,
    mmd2_from_kernels,
    pairwise_distances,
    poly_kernel,
    prdc,
    prdc_from_distances,
)
from synthmed.metrics.stats import bootstrap_ci, subsample_interval

try:  # small BLAS problems run fastest, and never oversubscribe shared cores, on one thread
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
    threadpool_limits = None

PRDC_KEYS = ("precision", "recall", "density", "coverage")
GROUP_KEYS = (
    "n_real", "n_synthetic", "feature_dim",
    "fid", "fid_corrected", "fid_ci_low", "fid_ci_high", "fid_real_real", "fid_real_real_std",
    "relative_fd", "fid_matched", "matched_n", "fid_real_real_matched", "relative_fd_full_n",
    "floor_splits",
    "kid_mean", "kid_std", "kid_all_pairs", "kid_ci_low", "kid_ci_high", "kid_real_real_mean",
    "kid_real_real_std",
    "kid_subset_size", "kid_subsets",
    "is_mean", "is_std", "is_real_mean", "is_real_std", "is_splits", "is_classes",
    *[k + s for k in PRDC_KEYS for s in ("", "_ci_low", "_ci_high")], "prdc_k",
    "n_bootstrap", "confidence", "ci_method", "ci_subsample",
)
FLOOR_SPLITS = 10  # random half splits of the real set averaged for the real-vs-real floor
# Intervals index n x n kernel/distance matrices per set: a larger set gets its intervals from a
# seeded random subsample of this many images (recorded as ``ci_subsample``).
BOOTSTRAP_MAX_N = 4000
PRDC_MIN_PER_K = 10  # per-class PRDC needs >= 10 k real images (k-NN radii of a few points lie)
CI_METHODS = {"fid": "3/4-subsampling without replacement, Richardson bias-corrected (calibrated)",
              "kid": "3/4-subsampling without replacement of the all-pairs MMD^2 (calibrated)",
              "prdc": "percentile bootstrap (sampling spread only, not calibrated)"}


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return perm[: n // 2], perm[n // 2:]


def _safe_ratio(a: float | None, b: float | None) -> float | None:
    return float(a / b) if a is not None and b is not None and b > 0 else None


def _floor_rng(seed: int, stream: int = 2) -> np.random.Generator:
    """The real-vs-real halves' own stream: the floor never depends on the synthetic set."""
    return np.random.default_rng([seed, stream])


def _fid_block(r: np.ndarray, s: np.ndarray, seed: int) -> dict:
    """FID, the floor, and the matched FD: |B| synthetic images vs real half A, or, when the
    synthetic set is smaller than B, m = n_synthetic images on both sides (synthetic vs A, and a
    random m of B vs A: ``fid_real_real_matched``), so the headline still compares like with
    like. ``fid_real_real`` itself never depends on the synthetic set."""
    out: dict = {"fid": fid(r, s)}
    if len(r) < 4:
        return out
    floor_rng, synth_rng = _floor_rng(seed), np.random.default_rng([seed, 3])
    small_rng = _floor_rng(seed, 5)
    floors, matched, small_floors = [], [], []
    m = min(len(r) - len(r) // 2, len(s))
    for _ in range(FLOOR_SPLITS):
        a, b = _halves(len(r), floor_rng)
        floors.append(fid(r[a], r[b]))
        if m < 2:
            continue
        matched.append(fid(r[a], s[synth_rng.choice(len(s), m, replace=False)]))
        if m < len(b):
            small_floors.append(fid(r[a], r[small_rng.choice(b, m, replace=False)]))
    out.update(fid_real_real=float(np.mean(floors)), fid_real_real_std=float(np.std(floors)),
               floor_splits=FLOOR_SPLITS)
    out["relative_fd_full_n"] = _safe_ratio(out["fid"], out["fid_real_real"])
    if matched:
        out["fid_matched"], out["matched_n"] = float(np.mean(matched)), m
        floor = out["fid_real_real"]
        if small_floors:
            floor = out["fid_real_real_matched"] = float(np.mean(small_floors))
        out["relative_fd"] = _safe_ratio(out["fid_matched"], floor)
    return out


def _kid_block(r: np.ndarray, s: np.ndarray, subsets: int, seed: int) -> dict:
    mean, std, size = kid(r, s, subsets=subsets, seed=seed)
    out: dict = {"kid_mean": mean, "kid_std": std, "kid_subset_size": size, "kid_subsets": subsets}
    if len(r) >= 4:
        per_split, rng = max(1, subsets // FLOOR_SPLITS), _floor_rng(seed, 4)
        runs = [kid(r[a], r[b], subsets=per_split, seed=seed + n)[:2]
                for n, (a, b) in enumerate(_halves(len(r), rng) for _ in range(FLOOR_SPLITS))]
        out["kid_real_real_mean"] = float(np.mean([m for m, _ in runs]))
        out["kid_real_real_std"] = float(np.mean([sd for _, sd in runs]))
    return out


def _intervals(r: np.ndarray, s: np.ndarray, metrics: set[str], k: int | None, *,
               n_resamples: int, confidence: float, seed: int) -> dict:
    """FID and KID: calibrated subsampling intervals of the population value
    (:func:`~synthmed.metrics.stats.subsample_interval`); PRDC: percentile bootstrap. Kernels and
    distances are computed once and indexed per resample."""
    out: dict = {"ci_method": {}}

    def put(key: str, res: dict | None, center: str | None = None) -> None:
        if res is not None:
            out["ci_method"][key] = CI_METHODS[key]
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = res["low"], res["high"]
            if center:
                out[center] = res["estimate"]

    opts = {"n_subsamples": n_resamples, "confidence": confidence, "seed": seed, "lower": 0.0}
    if "fid" in metrics:
        put("fid", subsample_interval(lambda i, j: fid(r[i], s[j]), len(r), len(s),
                                      bias_correct=True, **opts), "fid_corrected")
    if "kid" in metrics:
        krr, kss, krs = poly_kernel(r, r), poly_kernel(s, s), poly_kernel(r, s)
        put("kid", subsample_interval(
            lambda i, j: mmd2_from_kernels(krr[np.ix_(i, i)], kss[np.ix_(j, j)],
                                           krs[np.ix_(i, j)]), len(r), len(s), **opts),
            "kid_all_pairs")
    if "prdc" in metrics and k is not None:
        drr, dss, drs = (pairwise_distances(*m).astype(np.float32) for m in ((r,), (s,), (r, s)))
        res = bootstrap_ci(lambda i, j: prdc_from_distances(drr[np.ix_(i, i)], dss[np.ix_(j, j)],
                                                            drs[np.ix_(i, j)], k),
                           len(r), len(s), n_resamples=n_resamples, confidence=confidence,
                           seed=seed)
        if res is not None:
            out["ci_method"]["prdc"] = CI_METHODS["prdc"]
            for n, key in enumerate(PRDC_KEYS):
                out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(res[0][n]), float(res[1][n])
    return out


def compare_features(real: Features, synth: Features, *, metrics: set[str], seed: int = 0,
                     n_bootstrap: int = 100, confidence: float = 0.95, kid_subsets: int = 100,
                     prdc_k: int = 5) -> tuple[dict, list[str]]:
    """All feature-based metrics for one extractor: (flat dict with every ``GROUP_KEYS`` key,
    null where not requested or not computable, and the warnings that explain why)."""
    if threadpool_limits is None:
        return _compare(real, synth, metrics=metrics, seed=seed, n_bootstrap=n_bootstrap,
                        confidence=confidence, kid_subsets=kid_subsets, prdc_k=prdc_k)
    with threadpool_limits(limits=1, user_api="blas"):
        return _compare(real, synth, metrics=metrics, seed=seed, n_bootstrap=n_bootstrap,
                        confidence=confidence, kid_subsets=kid_subsets, prdc_k=prdc_k)


def _compare(real: Features, synth: Features, *, metrics: set[str], seed: int,
             n_bootstrap: int, confidence: float, kid_subsets: int,
             prdc_k: int) -> tuple[dict, list[str]]:
    r = np.asarray(real.features, np.float64)
    s = np.asarray(synth.features, np.float64)
    out: dict = dict.fromkeys(GROUP_KEYS)
    out.update(n_real=len(r), n_synthetic=len(s), feature_dim=int(r.shape[1]) if r.ndim == 2 else 0,
               n_bootstrap=n_bootstrap, confidence=confidence)
    warnings: list[str] = []
    d = out["feature_dim"]
    if min(len(r), len(s)) < d and metrics & {"fid", "kid", "prdc"}:
        warnings.append(f"n_real={len(r)} / n_synthetic={len(s)} is below the feature dimension "
                        f"{d}: covariances are rank-deficient and FID is strongly biased; read it "
                        "only beside fid_real_real (same extractor, same n)")
    if min(len(r), len(s)) < 2:
        warnings.append("fewer than 2 images in a set: no fidelity metrics")
        return out, warnings
    if len(r) // 2 < d and metrics & {"fid", "kid"}:
        warnings.append(f"the real-vs-real floor uses halves of {len(r) // 2} images, below the "
                        f"feature dimension {d}: the floor itself is rank-deficient and noisy")
    if "fid" in metrics:
        out.update(_fid_block(r, s, seed))
        if out["fid_real_real_matched"] is not None:
            warnings.append(f"the synthetic set ({len(s)}) is smaller than half the real set "
                            f"({len(r) - len(r) // 2}): relative FD compares {len(s)} synthetic "
                            f"with {len(s)} real images against one real half, over the floor "
                            "of the same sizes (fid_real_real_matched); generate more images "
                            "for a tighter number")
    if "kid" in metrics:
        out.update(_kid_block(r, s, kid_subsets, seed))
    k = min(prdc_k, len(r) - 2, len(s) - 2)  # prdc partitions at k + 1 < n
    if "prdc" in metrics and k >= 1:
        out.update(prdc(r, s, k), prdc_k=k)
    if "is" in metrics and synth.probs is not None:
        out["is_mean"], out["is_std"] = inception_score(synth.probs, 10, seed=seed)
        if real.probs is not None:
            out["is_real_mean"], out["is_real_std"] = inception_score(real.probs, 10, seed=seed)
        out.update(is_splits=min(10, len(synth.probs)), is_classes=int(synth.probs.shape[1]))
    elif "is" in metrics:
        warnings.append("this extractor has no class posteriors (e.g. a self-supervised domain "
                        "extractor): no Inception Score")
    if n_bootstrap > 0:
        rb, sb, sub = _ci_subsample(r, s, seed)
        if sub is not None:
            warnings.append(f"more than {BOOTSTRAP_MAX_N} images in a set: intervals from a "
                            f"seeded random subsample of {sub['n_real']} real and "
                            f"{sub['n_synthetic']} synthetic images (wider than at full n)")
        kb = min(prdc_k, len(rb) - 2, len(sb) - 2)
        out.update(_intervals(rb, sb, metrics, kb if kb >= 1 else None, n_resamples=n_bootstrap,
                              confidence=confidence, seed=seed), ci_subsample=sub)
    return out, warnings


def _ci_subsample(r: np.ndarray, s: np.ndarray, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """At most ``BOOTSTRAP_MAX_N`` images per set for the bootstrap (seeded, without replacement):
    (real, synthetic, None) when neither set is larger, else the sizes used for ``ci_subsample``."""
    if max(len(r), len(s)) <= BOOTSTRAP_MAX_N:
        return r, s, None
    rng = np.random.default_rng([seed, 1])  # its own stream: the point estimates are unchanged

    def take(x: np.ndarray) -> np.ndarray:
        if len(x) <= BOOTSTRAP_MAX_N:
            return x
        return x[np.sort(rng.choice(len(x), BOOTSTRAP_MAX_N, replace=False))]

    rb, sb = take(r), take(s)
    return rb, sb, {"n_real": len(rb), "n_synthetic": len(sb)}


def small_n_reasons(n_real: int, feature_dim: int, prdc_k: int) -> dict[str, str]:
    """Which per-class numbers a class with ``n_real`` real test images cannot support, and why
    (FID needs n >= feature dim for a full-rank covariance, and so do the floor's halves; PRDC's
    k-NN radii need many more than k points: at least ``PRDC_MIN_PER_K`` * k)."""
    out: dict[str, str] = {}
    if n_real < feature_dim:
        out["fid"] = f"{n_real} real images < feature dimension {feature_dim}"
    if n_real // 2 < feature_dim:
        out["fid_real_real"] = out["relative_fd"] = (
            f"floor halves of {n_real // 2} images < feature dimension {feature_dim}")
    if n_real < PRDC_MIN_PER_K * prdc_k:
        why = f"{n_real} real images < {PRDC_MIN_PER_K * prdc_k} (= {PRDC_MIN_PER_K} x k={prdc_k})"
        out.update(dict.fromkeys(PRDC_KEYS, why))
    return out


PER_CLASS_KEYS = ("n_real", "n_synthetic", "fid", "fid_real_real", "relative_fd", "kid_mean",
                  "kid_std", *PRDC_KEYS)


def per_class(real: Features, synth: Features, real_labels: np.ndarray, synth_labels: np.ndarray,
              classes: list[tuple[str, int, int]], *, metrics: set[str], seed: int = 0,
              prdc_k: int = 5, classifier_names: list[str] | None = None) -> dict[str, dict]:
    """The same metrics within each class (no CIs); ``classes`` holds (name, real index, synthetic
    index). A number the class is too small for (:func:`small_n_reasons`) is null, with the
    reason under ``unreliable``. With a supervised extractor, ``classifier_agreement`` is the
    share of synthetic images of a class that the real-data classifier assigns to that class."""
    out: dict[str, dict] = {}
    for name, ri, si in classes:
        fr = Features(real.features[real_labels == ri],
                      real.probs[real_labels == ri] if real.probs is not None else None)
        fs = Features(synth.features[synth_labels == si],
                      synth.probs[synth_labels == si] if synth.probs is not None else None)
        group, _ = compare_features(fr, fs, metrics=metrics - {"is"}, seed=seed, n_bootstrap=0,
                                    prdc_k=prdc_k)
        row = {key: group[key] for key in PER_CLASS_KEYS}
        reasons = small_n_reasons(len(fr.features), int(group["feature_dim"] or 0), prdc_k)
        row["unreliable"] = {k: why for k, why in reasons.items() if row.get(k) is not None}
        for key in row["unreliable"]:
            row[key] = None
        row["classifier_agreement"] = None
        if fs.probs is not None and classifier_names and name in classifier_names and len(fs.probs):
            target = classifier_names.index(name)
            row["classifier_agreement"] = float((fs.probs.argmax(axis=1) == target).mean())
        out[name] = row
    return out
