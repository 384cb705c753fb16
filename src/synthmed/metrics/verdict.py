"""A plain verdict from metrics.json: fidelity, diversity and privacy, each good / borderline /
poor, with the rule that gave it. The rules (docs/metrics.md, "The verdict"):

- fidelity: the headline ``relative_fd`` (matched-n FID over the real-vs-real floor; 1 = as close
  as a second real sample of the same size): good <= 2 < borderline <= 4 < poor (a
  real-vs-real ratio itself scatters by +-0.5 at n = 60); also poor when the density (Naeem et
  al. 2020; its expected value for real images is 1) is below 0.5, the sanity ladder's own
  "clearly worse" factor: at small n FID is mostly bias, so a generator whose images a person
  tells from real at a glance can stay within 2-3x the floor (BreastMNIST's cgan after 90 steps:
  2.05) while most of its images lie off the real manifold (density 0.13). It cannot be
  judged when the feature extractor failed its sanity ladder (noise, blur, shuffled tiles or a
  constant image scored as well as real held-out images) or there is no floor. The classifier
  two-sample test (``realism``, Lopez-Paz & Oquab 2017) caps it: AUC > 0.85 is poor, AUC > 0.65
  at best borderline (held-out real vs real: 0.43-0.52 on BreastMNIST, PneumoniaMNIST and DDTI;
  every degraded rung, down to blur sigma 1, a +-3 grey-level checkerboard and JPEG quality 30:
  >= 0.91; docs/metrics.md). Without FID, the C2ST alone rates it;
- diversity: recall and coverage (Kynkäänniemi et al. 2019; Naeem et al. 2020): good when
  recall >= 0.5 and coverage >= 0.7, poor when recall < 0.25 or coverage < 0.4. Low recall and
  coverage also follow when the images are off the real manifold (precision or density below
  0.5) though their variety is real-like (MS-SSIM within 0.1 of the real one); the line then says
  so, and that the set is not collapsed;
- privacy: copy rate and membership-inference AUC (pixel space, and feature space when measured:
  the worse of the two): good when copy rate <= 0.10 and AUC <= 0.60, poor when copy rate > 0.25
  or AUC > 0.75 (held-out real images score about 0.05 and 0.5). At small n the copy rate is
  noisy (held-out real images scored 0.1075 with 120 images), so "good" also holds when the 95%
  Wilson interval of the copy count still reaches 0.10; "poor" stays on the point value.

``overall`` is the worst of the three judged lines.
"""

from __future__ import annotations

from typing import Any

FIDELITY = {"good": 2.0, "poor": 4.0, "density_poor": 0.5}
C2ST = {"good": 0.65, "poor": 0.85}  # AUC; calibrated on the realism ladder (docs/metrics.md)
OFF_MANIFOLD = {"precision": 0.5, "density": 0.5, "ms_ssim_margin": 0.1}
DIVERSITY = {"good": {"recall": 0.5, "coverage": 0.7}, "poor": {"recall": 0.25, "coverage": 0.4}}
PRIVACY = {"good": {"copy_rate": 0.10, "membership_auc": 0.60},
           "poor": {"copy_rate": 0.25, "membership_auc": 0.75}}
RANK = {"good": 0, "borderline": 1, "poor": 2}
UNJUDGED = "cannot be judged"


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _worst(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _c2st_rating(auc: float) -> str:
    return "good" if auc <= C2ST["good"] else "borderline" if auc <= C2ST["poor"] else "poor"


def fidelity(m: dict[str, Any]) -> dict[str, Any]:
    rel, dens, sanity = m.get("relative_fd"), m.get("density"), m.get("sanity")
    auc = (m.get("realism") or {}).get("auc")
    rule = (f"relative FD (matched n; 1 = real-vs-real floor): good <= {FIDELITY['good']:g}, "
            f"poor > {FIDELITY['poor']:g}; also poor when density < "
            f"{FIDELITY['density_poor']:g} (real images: about 1); C2ST AUC (0.5 = a classifier "
            f"cannot tell): good <= {C2ST['good']:g}, poor > {C2ST['poor']:g}; the worse counts")
    out = {"rule": rule, "relative_fd": rel, "density": dens, "c2st_auc": auc, "reason": None}
    if isinstance(sanity, dict) and sanity.get("passed") is False and auc is None:
        return {**out, "rating": UNJUDGED,
                "reason": "the feature extractor failed its sanity ladder (degraded images "
                          "scored like real ones), so its FID cannot tell good from bad"}
    ratings = []
    if rel is not None and not (isinstance(sanity, dict) and sanity.get("passed") is False):
        r = ("good" if rel <= FIDELITY["good"] else
             "borderline" if rel <= FIDELITY["poor"] else "poor")
        ratings.append("poor" if dens is not None and dens < FIDELITY["density_poor"] else r)
    if auc is not None:
        ratings.append(_c2st_rating(auc))
    if not ratings:
        return {**out, "rating": UNJUDGED,
                "reason": "no relative FD (FID not requested, or too few real images for a floor) "
                          "and no classifier two-sample test"}
    rating = max(ratings, key=RANK.__getitem__)
    if auc is not None and _c2st_rating(auc) == "poor":
        out["reason"] = (f"a classifier tells the synthetic images from held-out real ones (AUC "
                         f"{auc:.3g}; 0.5 = it cannot)")
    if isinstance(sanity, dict) and sanity.get("passed") is False:
        out["reason"] = ((out["reason"] + "; ") if out["reason"] else "") + \
            ("rated by the C2ST alone: the feature extractor failed its sanity ladder, so FID "
             "is ignored")
    return {**out, "rating": rating}


def _off_manifold(m: dict[str, Any]) -> str | None:
    """Why recall/coverage are low when the images are off the real manifold but varied."""
    prec, dens = m.get("precision"), m.get("density")
    ms, ms_real = m.get("ms_ssim"), m.get("ms_ssim_real")
    off = (prec is not None and prec < OFF_MANIFOLD["precision"]) or \
        (dens is not None and dens < OFF_MANIFOLD["density"])
    if not off:
        return None
    if ms is not None and ms_real is not None and ms > ms_real + OFF_MANIFOLD["ms_ssim_margin"]:
        return (f"the set is also collapsed: MS-SSIM {ms:.3g} vs real {ms_real:.3g} (higher = "
                "more alike)")
    variety = (f"MS-SSIM {ms:.3g} vs real {ms_real:.3g} (not above it by more than "
               f"{OFF_MANIFOLD['ms_ssim_margin']:g}) shows the set is not collapsed"
               if ms is not None and ms_real is not None else
               "MS-SSIM not measured, so collapse is not ruled out")
    return (f"recall and coverage are low because the synthetic images lie off the real manifold "
            f"(precision {_f(prec)}, density {_f(dens)}), not necessarily for lack of variety: "
            f"{variety}; judge diversity again once fidelity improves")


def diversity(m: dict[str, Any]) -> dict[str, Any]:
    rec, cov = m.get("recall"), m.get("coverage")
    g, p = DIVERSITY["good"], DIVERSITY["poor"]
    rule = (f"good: recall >= {g['recall']:g} and coverage >= {g['coverage']:g}; poor: recall < "
            f"{p['recall']:g} or coverage < {p['coverage']:g}")
    base = {"rule": rule, "recall": rec, "coverage": cov, "ms_ssim": m.get("ms_ssim"),
            "ms_ssim_real": m.get("ms_ssim_real")}
    if rec is None or cov is None:
        return {**base, "rating": UNJUDGED,
                "reason": "no recall/coverage (PRDC not requested or too few images)"}
    if rec < p["recall"] or cov < p["coverage"]:
        rating = "poor"
    elif rec >= g["recall"] and cov >= g["coverage"]:
        rating = "good"
    else:
        rating = "borderline"
    reason = _off_manifold(m) if rating != "good" else None
    return {**base, "rating": rating, "reason": reason}


def wilson_low(k: int, n: int, z: float = 1.96) -> float:
    """Lower end of the Wilson score interval of a proportion k/n (Wilson 1927)."""
    if n <= 0:
        return 0.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return max(0.0, (centre - spread) / (1 + z * z / n))


def _copy_rate_low(m: dict[str, Any]) -> float | None:
    """The worse space's lower 95% bound on the copy rate (None without counts)."""
    n = m.get("n_synthetic")
    lows = [wilson_low(int(m[f"n_copies{s}"]), int(n)) for s in ("", "_features")
            if isinstance(n, int) and n > 0 and m.get(f"n_copies{s}") is not None]
    return max(lows) if lows else None


def privacy(m: dict[str, Any]) -> dict[str, Any]:
    rate = _worst(m.get("copy_rate"), m.get("copy_rate_features"))
    biased = bool(m.get("membership_auc_features_biased"))
    auc = _worst(m.get("membership_auc"), None if biased else m.get("membership_auc_features"))
    g, p = PRIVACY["good"], PRIVACY["poor"]
    rule = (f"good: copy rate <= {g['copy_rate']:g} and membership AUC <= "
            f"{g['membership_auc']:g}; poor: copy rate > {p['copy_rate']:g} or AUC > "
            f"{p['membership_auc']:g} (worse of pixel and feature space; good also when the copy "
            "rate's 95% interval reaches the limit)")
    if biased:
        rule += ("; the feature AUC is left out: its extractor was trained on the members, "
                 "which biases it upward at this size (docs/metrics.md)")
    if rate is None:
        return {"rating": UNJUDGED, "rule": rule, "copy_rate": None, "membership_auc": auc,
                "reason": "no privacy audit (needs --train and held-out --real images)"}
    if rate > p["copy_rate"] or (auc is not None and auc > p["membership_auc"]):
        rating = "poor"
    elif (rate <= g["copy_rate"] or (low := _copy_rate_low(m)) is not None
          and low <= g["copy_rate"]) and (auc is None or auc <= g["membership_auc"]):
        rating = "good"  # at small n, within noise of the limit
    else:
        rating = "borderline"
    return {"rating": rating, "rule": rule, "copy_rate": rate, "membership_auc": auc,
            "reason": None}


def verdict(m: dict[str, Any]) -> dict[str, Any]:
    """The ``verdict`` block of metrics.json from its flat (primary-extractor) numbers."""
    out = {"fidelity": fidelity(m), "diversity": diversity(m), "privacy": privacy(m)}
    judged = [v["rating"] for v in out.values() if v["rating"] in RANK]
    out["overall"] = max(judged, key=RANK.__getitem__) if judged else UNJUDGED
    return out


def lines(v: dict[str, Any]) -> list[str]:
    """The three plain lines the CLI ends with."""
    f, d, p = v["fidelity"], v["diversity"], v["privacy"]
    out = [f"fidelity: {f['rating']} - relative FD {_f(f['relative_fd'])}, density "
           f"{_f(f.get('density'))}, C2ST AUC {_f(f.get('c2st_auc'))} ({f['rule']})",
           f"diversity: {d['rating']} - recall {_f(d['recall'])}, coverage {_f(d['coverage'])}, "
           f"MS-SSIM {_f(d.get('ms_ssim'))} (real {_f(d.get('ms_ssim_real'))}) ({d['rule']})",
           f"privacy: {p['rating']} - copy rate {_f(p['copy_rate'])}, membership AUC "
           f"{_f(p['membership_auc'])} ({p['rule']})"]
    for n, part in enumerate((f, d, p)):
        if part["reason"]:
            out[n] += f"; {part['reason']}"
    return out
