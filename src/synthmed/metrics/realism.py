"""Could a machine tell the synthetic images from real ones? The classifier two-sample test.

Lopez-Paz & Oquab (2017, "Revisiting classifier two-sample tests", ICLR): train a classifier to
tell sample A from sample B; if it does better than chance on images it did not see, the two
distributions differ, and *how* much better (the AUC) says how easily. Here A is held-out real
images and B the synthetic set, both uint8/uint16 ``(N, C, H, W)`` arrays:

- counts and sizes matched: the larger set is subsampled (seeded) to the smaller one's count and
  the synthetic images are resized to the real size (:func:`synthmed.resize.resize_array`);
- stratified k-fold cross-validation; identical images (same bytes, in either set) form one group
  that never straddles a training and a test fold (a collapsed generator's repeats, or a copied
  training image, cannot be "recognised");
- the classifier: standardised :mod:`~synthmed.metrics.realism_features` (grey levels, layout,
  texture, spectrum, 8x8 blocks; all invariant to a horizontal flip) and L2 logistic regression,
  deterministic per seed; 500 vs 500 images at 64 px cost a few CPU seconds (docs/metrics.md);
- the AUC of the pooled out-of-fold scores, with a DeLong interval widened by :data:`CI_WIDEN`
  (calibrated on real-vs-real halves), its floor (the same test
  between two random halves of the real images) and a permutation p-value (labels permuted and
  the whole cross-validation rerun, as many times as ``budget_s`` CPU seconds allow, at most
  ``permutations``: the order is seeded, so a larger budget only adds permutations);
- a realism score per synthetic image: the classifier's out-of-fold probability that it is
  real; images left out by the count matching are scored by the average of the fold models.

0.5 = a machine cannot tell them apart; 1.0 = every synthetic image is recognised.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sstats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import StandardScaler

from synthmed.errors import SynthmedError
from synthmed.metrics.realism_features import FEATURES_VERSION, realism_features
from synthmed.metrics.spectral import spectral_artefacts  # noqa: F401  (the library API)
from synthmed.resize import resize_array

FOLDS = 5
C_REG = 0.1  # inverse L2 strength of the logistic regression (standardised features)
PERMUTATIONS = 100
BUDGET_S = 20.0  # CPU seconds for the permutations
# DeLong's interval treats the pooled out-of-fold scores as one fixed classifier's; refitting per
# fold adds variance. Measured on random halves of real sets (40 repeats each): AUC sd 0.045 vs
# DeLong's 0.033 (BreastMNIST, 150 per side), 0.043 vs 0.024 (PneumoniaMNIST, 300 per side); the
# interval is widened by this factor so that it covers 0.5 in >= 90 % of such repeats.
CI_WIDEN = 1.8
MIN_PER_SIDE = 10  # fewer images on a side: no test (a 5-fold split needs 2 per fold and class)
MIN_PER_CLASS = 20
CLASSIFIER = (f"logistic regression (L2, C={C_REG:g}) on standardised realism features "
              f"(version {FEATURES_VERSION}), {FOLDS}-fold stratified group cross-validation")


@dataclass
class C2STResult:
    """One classifier two-sample test; ``scores``: P(real) per synthetic image (input order)."""

    auc: float
    ci_low: float
    ci_high: float
    n_real: int
    n_synthetic: int
    p_value: float | None = None
    n_permutations: int = 0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"auc": self.auc, "auc_ci_low": self.ci_low, "auc_ci_high": self.ci_high,
                "p_value": self.p_value, "n_permutations": self.n_permutations,
                "n_real": self.n_real, "n_synthetic": self.n_synthetic,
                "cpu_s": round(self.cpu_s, 3)}


def auc_delong(pos: np.ndarray, neg: np.ndarray, confidence: float = 0.95
               ) -> tuple[float, float, float]:
    """AUC = P(pos > neg) + P(tie)/2 and its DeLong et al. (1988) normal interval."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    m, n = len(pos), len(neg)
    ranks = sstats.rankdata(np.concatenate([pos, neg]))
    rp, rn = sstats.rankdata(pos), sstats.rankdata(neg)
    v10 = (ranks[:m] - rp) / n  # per positive: share of negatives below it (ties 1/2)
    v01 = 1.0 - (ranks[m:] - rn) / m  # per negative: share of positives above it
    auc = float(v10.mean())
    se = np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n) if m > 1 and n > 1 else 0.0
    z = sstats.norm.ppf(0.5 + confidence / 2)
    return auc, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def image_groups(*sets: np.ndarray) -> np.ndarray:
    """One group id per image over all ``sets``; byte-identical images share it."""
    seen: dict[bytes, int] = {}
    out = []
    for images in sets:
        for img in images:
            key = hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest()
            out.append(seen.setdefault(key, len(seen)))
    return np.asarray(out, np.int64)


def _first_of_each(groups: np.ndarray) -> np.ndarray:
    """Indices of the first image of each group, in input order."""
    return np.sort(np.unique(groups, return_index=True)[1])


def _model(seed: int, classifier: str = "logistic") -> Any:
    """``logistic`` (the default) or ``boosting`` (sklearn's histogram gradient boosting: tried
    for the docs' comparison, slower and no more powerful on the ladder)."""
    if classifier == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                                              random_state=seed)
    if classifier != "logistic":
        raise SynthmedError(f"unknown realism classifier {classifier!r}; logistic or boosting")
    return LogisticRegression(C=C_REG, max_iter=300, random_state=seed)


def _cv_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int,
               extra: np.ndarray | None = None, classifier: str = "logistic"
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold P(label 1) for every row, and the fold models' mean score of ``extra``."""
    folds = min(FOLDS, int(np.bincount(y).min()))
    oof = np.full(len(y), np.nan)
    extra_sum = np.zeros(len(extra)) if extra is not None and len(extra) else None
    split = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for tr, te in split.split(x, y, groups):
        scaler = StandardScaler().fit(x[tr])
        clf = _model(seed, classifier).fit(scaler.transform(x[tr]), y[tr])
        oof[te] = clf.predict_proba(scaler.transform(x[te]))[:, 1]
        if extra_sum is not None:
            extra_sum += clf.predict_proba(scaler.transform(extra))[:, 1]
    return oof, (extra_sum / folds if extra_sum is not None else None)


def match_sets(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """``synthetic`` at the real images' (H, W) and dtype checks (the same as evaluate's)."""
    real, synthetic = np.asarray(real), np.asarray(synthetic)
    if real.ndim != 4 or synthetic.ndim != 4:
        raise SynthmedError("the realism test takes (N, C, H, W) image arrays")
    if real.shape[1] != synthetic.shape[1]:
        raise SynthmedError(f"the realism test needs the same channel count (real "
                            f"{real.shape[1]}, synthetic {synthetic.shape[1]})")
    if synthetic.shape[2:] != real.shape[2:]:
        synthetic = resize_array(synthetic, tuple(real.shape[2:]))
    if synthetic.dtype != real.dtype:
        raise SynthmedError(f"the realism test needs one dtype (real {real.dtype}, synthetic "
                            f"{synthetic.dtype})")
    return synthetic


def c2st(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0,
         permutations: int = PERMUTATIONS, budget_s: float = BUDGET_S,
         confidence: float = 0.95, features: tuple[np.ndarray, np.ndarray] | None = None,
         classifier: str = "logistic") -> C2STResult:
    """Classifier two-sample test of ``real`` vs ``synthetic`` (N, C, H, W) uint8/uint16 arrays.

    AUC > 0.5: the classifier ranks real images above synthetic ones on images it did not train
    on. ``permutations=0`` skips the p-value. ``features``: precomputed realism features of the
    two sets (rows in input order), to share them between tests."""
    t0 = time.process_time()
    synthetic = match_sets(real, synthetic)
    real = np.asarray(real)
    groups_all = image_groups(real, synthetic)
    gr, gs = groups_all[:len(real)], groups_all[len(real):]
    ur, us = _first_of_each(gr), _first_of_each(gs)  # exact repeats within a set count once
    n = min(len(ur), len(us))
    if n < MIN_PER_SIDE:
        raise SynthmedError(f"the realism test needs at least {MIN_PER_SIDE} distinct images per "
                            f"set (got {len(ur)} real, {len(us)} synthetic"
                            + (f" among {len(synthetic)}: the rest are exact repeats)"
                               if len(us) < len(synthetic) else ")"))
    fr, fs = features if features is not None else (realism_features(real),
                                                    realism_features(synthetic))
    rng = np.random.default_rng(seed)
    ri = np.sort(rng.permutation(ur)[:n])
    si = np.sort(rng.permutation(us)[:n])
    left = np.setdiff1d(us, si)
    x = np.concatenate([fr[ri], fs[si]])
    y = np.repeat([1, 0], n)
    groups = np.concatenate([gr[ri], gs[si]])
    oof, extra = _cv_scores(x, y, groups, seed, fs[left], classifier)
    auc, lo, hi = auc_delong(oof[:n], oof[n:], confidence)
    lo, hi = max(0.0, auc - CI_WIDEN * (auc - lo)), min(1.0, auc + CI_WIDEN * (hi - auc))
    by_group = dict(zip(gs[si].tolist(), oof[n:].tolist(), strict=True))
    if extra is not None:
        by_group.update(zip(gs[left].tolist(), extra.tolist(), strict=True))
    scores = np.array([by_group[g] for g in gs.tolist()])  # a repeat gets its original's score
    res = C2STResult(auc, lo, hi, n, n, scores=scores)
    if permutations > 0:
        prng = np.random.default_rng([seed, 1])
        start, beat = time.process_time(), 0
        for _ in range(permutations):
            yp = prng.permutation(y)
            s, _ = _cv_scores(x, yp, groups, seed, classifier=classifier)
            beat += auc_delong(s[yp == 1], s[yp == 0])[0] >= auc
            res.n_permutations += 1
            if time.process_time() - start > budget_s:
                break
        res.p_value = (1 + beat) / (1 + res.n_permutations)
    res.cpu_s = time.process_time() - t0
    return res


def real_floor(real: np.ndarray, *, seed: int = 0, confidence: float = 0.95,
               features: np.ndarray | None = None) -> C2STResult | None:
    """The same test between two random halves of the real images: what a perfect generator
    scores at this size (about 0.5). None when there are too few images."""
    real = np.asarray(real)
    if len(real) < 2 * MIN_PER_SIDE:
        return None
    f = features if features is not None else realism_features(real)
    perm = np.random.default_rng([seed, 2]).permutation(len(real))
    a, b = np.sort(perm[:len(real) // 2]), np.sort(perm[len(real) // 2:2 * (len(real) // 2)])
    return c2st(real[a], real[b], seed=seed, permutations=0, confidence=confidence,
                features=(f[a], f[b]))


def per_class_c2st(real: np.ndarray, real_labels: np.ndarray, synthetic: np.ndarray,
                   synth_labels: np.ndarray, pairs: list[tuple[str, int, int]], *, seed: int = 0,
                   features: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """The test within each class of ``pairs`` (name, real label, synthetic label) that has at
    least :data:`MIN_PER_CLASS` images on both sides (no permutations)."""
    fr, fs = features if features is not None else (realism_features(real),
                                                    realism_features(synthetic))
    out: dict[str, dict[str, Any]] = {}
    for name, rk, sk in pairs:
        rm, sm = np.asarray(real_labels) == rk, np.asarray(synth_labels) == sk
        if min(rm.sum(), sm.sum()) < MIN_PER_CLASS:
            out[name] = {"auc": None, "n_real": int(rm.sum()), "n_synthetic": int(sm.sum()),
                         "reason": f"fewer than {MIN_PER_CLASS} images on a side"}
            continue
        r = c2st(real[rm], synthetic[sm], seed=seed, permutations=0, features=(fr[rm], fs[sm]))
        out[name] = {k: v for k, v in r.summary().items() if k not in ("p_value",
                                                                        "n_permutations")}
    return out


def realism_block(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0,
                  real_labels: np.ndarray | None = None, synth_labels: np.ndarray | None = None,
                  pairs: list[tuple[str, int, int]] | None = None,
                  permutations: int = PERMUTATIONS, budget_s: float = BUDGET_S,
                  confidence: float = 0.95) -> tuple[dict[str, Any], np.ndarray]:
    """What ``evaluate`` records under ``realism``: the test, its real-vs-real floor and per
    class, and the per-image realism scores (P(real), out of fold)."""
    t0 = time.process_time()
    synthetic = match_sets(real, synthetic)
    fr, fs = realism_features(real), realism_features(synthetic)
    res = c2st(real, synthetic, seed=seed, permutations=permutations, budget_s=budget_s,
               confidence=confidence, features=(fr, fs))
    floor = real_floor(real, seed=seed, confidence=confidence, features=fr)
    block: dict[str, Any] = {**res.summary(), "classifier": CLASSIFIER, "confidence": confidence,
                             "floor": floor.summary() if floor else None}
    if pairs and real_labels is not None and synth_labels is not None:
        block["per_class"] = per_class_c2st(real, real_labels, synthetic, synth_labels, pairs,
                                            seed=seed, features=(fr, fs))
    block["cpu_s"] = round(time.process_time() - t0, 3)
    return block, res.scores


def realism_ladder(images: np.ndarray, *, seed: int = 0, rungs: tuple[str, ...] | None = None,
                   classifier: str = "logistic") -> dict[str, Any]:
    """The classifier test on degraded held-out real images: two random halves A and B; ``real``
    is A vs B, each rung A vs the rung applied to B (blur sigma 1, a +-3 pixel checkerboard,
    JPEG quality 30, the mirror image, and the extractor ladder's noise, blur 1.5, tiles and
    constant mean image). Every rung but ``flip`` should be found (:data:`LADDER_RULE`)."""
    from synthmed.metrics.sanity import REALISM_RUNGS, RUNGS, make_rung

    images = np.asarray(images)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(images))
    half = len(images) // 2
    a, b = images[np.sort(perm[:half])], images[np.sort(perm[half:2 * half])]
    fa = realism_features(a)
    sets = {"real": b, **{r: make_rung(r, b, rng) for r in (rungs or REALISM_RUNGS + RUNGS)}}
    out: dict[str, Any] = {"n_per_half": half, "rule": LADDER_RULE, "rungs": {}}
    for name, imgs in sets.items():
        try:
            r = c2st(a, imgs, seed=seed, permutations=0, features=(fa, realism_features(imgs)),
                     classifier=classifier)
        except SynthmedError as e:  # the constant rung: one distinct image
            out["rungs"][name] = {"auc": None, "auc_ci_low": None, "auc_ci_high": None,
                                  "reason": str(e)}
            continue
        out["rungs"][name] = {"auc": r.auc, "auc_ci_low": r.ci_low, "auc_ci_high": r.ci_high}
    real = out["rungs"].pop("real")
    out["real"] = real
    for row in out["rungs"].values():
        row["flagged"] = ladder_flagged(row, real) if row["auc"] is not None else None
    return out


LADDER_MARGIN = 0.1
LADDER_RULE = (f"flagged when the rung's AUC interval lies above 0.5 and its AUC is at least "
               f"{LADDER_MARGIN:g} above the real-vs-real AUC")


def ladder_flagged(row: dict[str, float], real: dict[str, float]) -> bool:
    """:data:`LADDER_RULE`."""
    return bool(row["auc_ci_low"] > 0.5 and row["auc"] >= real["auc"] + LADDER_MARGIN)
