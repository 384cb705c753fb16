"""Statistics over seeds and paired comparisons on known toy cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from synthmed.tasks.stats import holm, paired_comparison, result_line, summarize, t_interval


def test_summary_mean_std_and_t_interval():
    s = summarize([1, 2, 3, 4, 5])
    half = sps.t.ppf(0.975, 4) * math.sqrt(2.5) / math.sqrt(5)  # 2.776 * 0.7071
    assert s["n"] == 5 and s["mean"] == 3 and s["std"] == pytest.approx(math.sqrt(2.5))
    assert s["ci95"] == pytest.approx([3 - half, 3 + half])
    assert s["ci95"] == pytest.approx([1.0367, 4.9633], abs=1e-4)
    assert summarize([0.5, float("nan"), 0.7])["n"] == 2  # a failed seed is left out
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_paired_comparison_known_case():
    b = np.array([0.80, 0.82, 0.78, 0.85, 0.81])
    a = b + np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    c = paired_comparison(a, b)
    assert c["n"] == 5 and c["mean_diff"] == pytest.approx(0.3)
    # t = 0.3 / (0.1581 / sqrt 5) = 4.243 with 4 df: p = 0.0132
    assert c["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert c["p"] == pytest.approx(0.01324, abs=1e-4)
    assert c["ci95"] == pytest.approx([0.3 - 0.1963, 0.3 + 0.1963], abs=1e-3)
    assert c["significant"] and c["verdict"] == "better" and c["p_wilcoxon"] is None
    worse = paired_comparison(a, b, higher_is_better=False)  # e.g. HD95
    assert worse["verdict"] == "worse"


def test_pairing_matters_more_than_spread():
    """Arms far apart across seeds but consistently ordered within a seed: significant."""
    base = np.array([0.60, 0.70, 0.80, 0.90, 0.65, 0.75])
    c = paired_comparison(base + 0.01 + np.array([0, 1, -1, 1, 0, -1]) * 1e-3, base)
    assert c["significant"] and c["p_wilcoxon"] is not None  # n >= 6: Wilcoxon too
    assert sps.ttest_ind(base + 0.01, base).pvalue > 0.5  # unpaired would see nothing


def test_degenerate_differences():
    same = paired_comparison([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert math.isnan(same["p"]) and same["verdict"].startswith("n/a")
    shifted = paired_comparison([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert math.isnan(shifted["p"]) and shifted["verdict"].startswith("n/a")
    assert not shifted["significant"]
    one = paired_comparison([0.6], [0.5])
    assert math.isnan(one["p"]) and one["verdict"] == "n/a: fewer than 3 seeds"
    with pytest.raises(ValueError):
        paired_comparison([1, 2], [1, 2, 3])


def test_two_seeds_give_no_test_never_p_zero():
    """The issue's case: two seeds with identical differences were p = 0, 'better'."""
    c = paired_comparison([.80, .90], [.79, .89])
    assert math.isnan(c["p"]) and c["verdict"] == "n/a: fewer than 3 seeds"
    assert not c["significant"]
    line = result_line("real+classic+synthetic", "auc", c, reference="real+classic", ratio=1.0)
    assert "no test" in line and "fewer than 3 seeds" in line and "p=0" not in line


def test_bounded_metric_intervals_stay_in_range_with_a_note():
    s = summarize([0.55, 0.99], metric="auc")  # 2 seeds: the raw t-interval is about [-2.5, 4]
    lo, hi = s["ci95"]
    assert 0.0 <= lo <= hi <= 1.0 and s["ci_note"] and "clipped" in s["ci_note"]
    assert not s["ci_reliable"]
    raw = summarize([0.55, 0.99])
    assert raw["ci95"][0] < 0 and raw["ci_note"] is None  # unbounded metric: untouched
    ok = summarize([0.80, 0.81, 0.82, 0.80, 0.81], metric="auc")
    assert ok["ci_note"] is None and ok["ci_reliable"]
    d = paired_comparison([0.9, 0.1, 0.95], [0.1, 0.9, 0.05], metric="auc")
    assert -1.0 <= d["ci95"][0] <= d["ci95"][1] <= 1.0 and d["ci_note"]


def test_verdict_follows_holm_adjusted_p():
    """p = 0.02 alone is significant; Holm-adjusted over a family of three it is not."""
    from types import SimpleNamespace

    from synthmed.tasks.utility import summarize_study

    base = np.array([0.80, 0.82, 0.78, 0.85, 0.81])
    small = np.array([0.010, 0.030, -0.008, 0.020, 0.012])  # paired t p about 0.08
    recs = []
    for arm, ratio, shift in [("real+classic", 0.0, 0 * small), ("real", 0.0, small),
                              ("real+classic+synthetic", 1.0,
                               np.array([0.010, 0.030, 0.005, 0.020, 0.015])),  # p about 0.02
                              ("synthetic-only", 1.0, -small)]:
        recs += [{"arm": arm, "kind": arm, "ratio": ratio, "seed": s, "source": None,
                  "test": {"auc": float(base[s] + shift[s])}} for s in range(5)]
    study = SimpleNamespace(seeds=list(range(5)), metrics=("auc",), select="auc")
    doc = summarize_study(study, recs)
    syn = next(c for c in doc["comparisons"] if c["arm"] == "real+classic+synthetic")
    assert syn["p"] < 0.05 <= syn["p_holm"]
    assert syn["verdict"] == "not significant" and not syn["significant"]
    assert f"p={syn['p']:.2g}, Holm p={syn['p_holm']:.2g}" in syn["line"]


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adj = holm([0.2, float("nan"), 0.01])
    assert adj[0] == pytest.approx(0.2) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)


def test_result_line_in_plain_words():
    c = {"n": 5, "mean_diff": 0.021, "ci95": [-0.004, 0.046], "p": 0.09,
         "verdict": "not significant"}
    line = result_line("real+classic+synthetic", "auc", c, reference="real+classic", ratio=1.0)
    assert line == ("synthetic augmentation (1x): AUC +0.021 [\u22120.004, 0.046] vs real+classic"
                    " \u2014 not significant (paired t p=0.09, 5 seeds)")
    worse = dict(c, mean_diff=-0.05, ci95=[-0.08, -0.02], p=0.004, verdict="worse")
    line = result_line("synthetic-only", "dice", worse, reference="real+classic", ratio=1.0,
                       source="acgan")
    assert line.startswith("synthetic only (1x, acgan): Dice \u22120.050 "
                           "[\u22120.080, \u22120.020]")
    assert "worse (paired t p=0.004" in line
    holm_line = result_line("synthetic-only", "dice", dict(worse, p_holm=0.012),
                            reference="real+classic")
    assert "(paired t p=0.004, Holm p=0.012, 5 seeds)" in holm_line


def test_result_line_names_the_duplicate_ratio():
    c = {"n": 5, "mean_diff": 0.003, "ci95": [-0.015, 0.021], "p": 0.68,
         "verdict": "not significant"}
    line = result_line("synthetic-only", "auc", c, reference="real+classic+duplicate", ratio=1.0,
                       reference_ratio=0.5)
    assert "vs real+classic+duplicate (0.5x) \u2014 not significant" in line
    plain = result_line("real", "auc", c, reference="real+classic", reference_ratio=0.0)
    assert plain.startswith("no augmentation: AUC +0.003") and "vs real+classic \u2014" in plain


SEEDS = [0, 1, 2, 3, 4]
BASE = np.array([0.80, 0.82, 0.78, 0.85, 0.81])
NOISE = np.array([0.0, 0.002, -0.002, 0.001, -0.001])
# arm, ratio, per-seed AUC shift from real+classic
TOY = [("real", 0.0, -0.05), ("real+classic", 0.0, 0.0),
       ("real+classic+synthetic", 0.5, 0.02), ("real+classic+synthetic", 2.0, 0.04),
       ("real+classic+duplicate", 0.5, 0.01), ("real+classic+duplicate", 2.0, 0.03),
       ("synthetic-only", 1.0, -0.10)]


def _toy_records():
    recs = []
    for k, (arm, ratio, shift) in enumerate(TOY):
        auc = BASE + shift + (NOISE * (k + 1) / 4 if shift else 0)
        recs += [{"arm": arm, "kind": arm, "ratio": ratio, "seed": s, "source": None,
                  "test": {"auc": auc[s], "sensitivity": 0.5}} for s in SEEDS]
    return recs


def test_every_arm_is_compared_with_both_references():
    from types import SimpleNamespace

    from synthmed.tasks.utility import summarize_study

    study = SimpleNamespace(seeds=SEEDS, metrics=("auc", "sensitivity"), select="auc")
    doc = summarize_study(study, _toy_records())
    auc = [c for c in doc["comparisons"] if c["metric"] == "auc"]
    got = {(c["arm"], c["ratio"], c["reference"], c["reference_ratio"]): c for c in auc}
    dup = "real+classic+duplicate"
    assert set(got) == {  # duplicate ratio: the arm's own, else the nearest (real: smallest)
        ("real", 0.0, "real+classic", 0.0), ("real", 0.0, dup, 0.5),
        ("real+classic", 0.0, dup, 0.5),
        ("real+classic+synthetic", 0.5, "real+classic", 0.0),
        ("real+classic+synthetic", 0.5, dup, 0.5),
        ("real+classic+synthetic", 2.0, "real+classic", 0.0),
        ("real+classic+synthetic", 2.0, dup, 2.0),
        (dup, 0.5, "real+classic", 0.0), (dup, 2.0, "real+classic", 0.0),
        ("synthetic-only", 1.0, "real+classic", 0.0), ("synthetic-only", 1.0, dup, 0.5)}
    assert len(doc["comparisons"]) == 2 * len(auc) == 22
    shifts = {(a, r): s for a, r, s in TOY}
    for (arm, ratio, ref, ref_ratio), c in got.items():
        expected = shifts[arm, ratio] - shifts[ref, ref_ratio]
        assert c["mean_diff"] == pytest.approx(expected, abs=2e-3) and c["n"] == 5
        assert np.sign(c["mean_diff"]) == np.sign(expected)
        assert c["verdict"] == ("better" if expected > 0 else "worse")  # tiny noise: significant
        assert 0 <= c["p_holm"] <= 1 and c["p_holm"] >= c["p"]
    assert got["real+classic+synthetic", 2.0, dup, 2.0]["mean_diff"] == pytest.approx(0.01,
                                                                                         abs=2e-3)
    assert got["synthetic-only", 1.0, dup, 0.5]["mean_diff"] == pytest.approx(-0.11, abs=2e-3)
    assert doc["result_lines"] == [c["line"] for c in auc]
    assert ("synthetic only (1x): AUC \u22120.110" in got["synthetic-only", 1.0, dup, 0.5]["line"]
            and "vs real+classic+duplicate (0.5x) \u2014 worse" in
            got["synthetic-only", 1.0, dup, 0.5]["line"])


def test_duplicate_reference_ratio_rule():
    from synthmed.tasks.utility import nearest_ratio, references

    groups = {("real+classic", 0.0): [], ("real+classic+duplicate", 0.5): [],
              ("real+classic+duplicate", 1.5): []}
    assert nearest_ratio([0.5, 1.5], 1.0) == 0.5  # a tie goes to the smaller ratio
    assert nearest_ratio([], 1.0) is None
    assert references(groups, "synthetic-only", "synthetic-only", 1.4) == [
        ("real+classic", 0.0), ("real+classic+duplicate", 1.5)]
    assert references(groups, "real+classic+duplicate", "real+classic+duplicate", 1.5) == [
        ("real+classic", 0.0)]
    assert references({("real", 0.0): []}, "real", "real", 0.0) == []  # no reference was run


def test_kappa_interval_is_clipped_to_its_range():
    """Issue 19: a 2-seed QW kappa interval read [-1.29, 2.87]."""
    from synthmed.tasks.stats import paired_comparison, summarize

    s = summarize([0.5, 0.99], metric="kappa_qw")
    assert s["ci95"][0] >= -1 and s["ci95"][1] <= 1 and s["ci_note"]
    c = paired_comparison([0.9, -0.5], [-0.9, 0.9], metric="kappa_qw")
    assert c["ci95"][0] >= -2 and c["ci95"][1] <= 2
