"""What a reader sees: each note once, short interval headers with one note on the methods, the
bias-corrected FID beside its interval, a plain ceiling line when every arm saturates, and why a
per-class cell is empty. Hand-made run directories (values from a real quickstart run); no
training."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import yaml

from synthmed.report import render_report

SHORT = ("stopped at step 1,000; this recipe (cgan) needs ~2,000 steps for usable samples at "
         "32 px (docs/training.md)")
CI_METHOD = {"fid": "3/4-subsampling without replacement, Richardson bias-corrected (calibrated)",
             "kid": "3/4-subsampling without replacement of the all-pairs MMD^2 (calibrated)",
             "prdc": "percentile bootstrap (sampling spread only, not calibrated)"}


def _text(html: str) -> str:
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _marker(rd: Path, stage: str, outputs: dict) -> None:
    (rd / "stages").mkdir(parents=True, exist_ok=True)
    (rd / "stages" / f"{stage}.json").write_text(json.dumps(
        {"stage": stage, "outputs": outputs, "seconds": 80.0, "finished": "2026-01-01T00:00"}))


def _train(rd: Path, log: list[str]) -> None:
    run = rd / "train" / "run1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "cgan"},
                                                     "train": {"steps": 1000, "seed": 0}}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss_d": 1.0, "loss_g": 0.5, "img_per_s": 400.0}) + "\n"
        for s in (500, 1000)))
    (run / "log.txt").write_text("".join(f"2026-11-30T23:47:{i:02d} {x}\n"
                                         for i, x in enumerate(log)))
    _marker(rd, "train", {"train_run": "train/run1"})


def _metrics(rd: Path, **extra) -> None:
    m = {"n_real": 39, "n_synthetic": 319, "n_train": 319, "extractor": "domain",
         "feature_dim": 187, "prdc_k": 5, "fid": 24.705, "fid_corrected": 15.788,
         "fid_ci_low": 12.931, "fid_ci_high": 18.645, "fid_real_real": 22.72,
         "relative_fd": 1.626, "kid_mean": 0.104, "kid_ci_low": 0.0748, "kid_ci_high": 0.133,
         "kid_real_real_mean": -0.0146, "precision": 0.273, "precision_ci_low": 0.185,
         "precision_ci_high": 0.456, "recall": 0.41, "recall_ci_low": 0.179,
         "recall_ci_high": 0.521, "confidence": 0.95, "ci_method": CI_METHOD,
         "per_class": {c: {"n_real": n, "n_synthetic": 4 * n, "fid": None, "fid_real_real": None,
                           "precision": None, "recall": None, "coverage": None,
                           "ms_ssim": 0.2, "ms_ssim_real": 0.2,
                           "unreliable": {
                               "fid": f"{n} real images < feature dimension 187",
                               "fid_real_real": f"floor halves of {n // 2} images < feature "
                                                "dimension 187",
                               "precision": f"{n} real images < 50 (= 10 x k=5)",
                               "recall": f"{n} real images < 50 (= 10 x k=5)",
                               "coverage": f"{n} real images < 50 (= 10 x k=5)"}}
                       for c, n in (("benign", 26), ("malignant", 13))}, **extra}
    (rd / "evaluate").mkdir(parents=True)
    (rd / "evaluate" / "metrics.json").write_text(json.dumps(m))
    _marker(rd, "evaluate", {"metrics": "evaluate/metrics.json"})


ARMS = {"real+classic": (0.0, [1.0, 1.0, 1.0]), "real+classic+synthetic": (1.0, [1.0, 1.0, 1.0]),
        "synthetic-only": (1.0, [0.997, 1.0, 0.997])}


def _utility(rd: Path, arms: dict) -> None:
    runs = [{"arm": a, "ratio": r, "seed": s, "test": {"auc": v}}
            for a, (r, vals) in arms.items() for s, v in enumerate(vals)]
    summary = [{"arm": a, "ratio": r, "metric": "auc", "n": 3, "mean": sum(v) / 3,
                "ci95": [min(v), 1.0]} for a, (r, v) in arms.items()]
    same = arms["real+classic+synthetic"][1] == arms["real+classic"][1]
    comp = {"arm": "real+classic+synthetic", "ratio": 1.0, "reference": "real+classic",
            "reference_ratio": 0.0, "metric": "auc", "n": 3, "mean_diff": 0.0 if same else 0.03,
            "ci95": [0.0, 0.0] if same else [0.01, 0.05], "p": None if same else 0.02,
            "p_holm": None if same else 0.04,
            "verdict": "n/a: identical differences on every seed (no variance to test)" if same
            else "better"}
    line = ("synthetic augmentation (1x): AUC +0.000 [0.000, 0.000] vs real+classic — no test "
            "(paired t n/a: identical differences on every seed (no variance to test), 3 seeds)")
    (rd / "utility").mkdir(parents=True)
    (rd / "utility" / "utility.json").write_text(json.dumps(
        {"task": "classification", "model": "small-resnet", "primary_metric": "auc",
         "seeds": [0, 1, 2], "summary": summary, "comparisons": [comp], "runs": runs,
         "result_lines": [line], "files": []}))
    _marker(rd, "utility", {"utility": "utility/utility.json"})


def _section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}">')[1].split("</section>")[0]


def test_the_short_of_recipe_note_appears_once_in_summary_and_once_in_training(tmp_path):
    _train(tmp_path, ["estimate: 1,000 steps ≈ 77 s on this machine", "finished at step 1000",
                      SHORT])
    html = render_report(tmp_path)
    assert _text(_section(html, "summary")).count("needs ~2,000 steps") == 1
    assert _text(_section(html, "training")).count("needs ~2,000") == 1


def test_a_stale_short_note_from_an_earlier_session_is_not_shown(tmp_path):
    """Stopped early, then resumed to the recipe's steps: the old note no longer applies."""
    _train(tmp_path, ["stopped by SIGINT at step 114", SHORT.replace("1,000", "114"),
                      "finished at step 2000"])
    assert "stopped at step 114" not in _text(render_report(tmp_path))


def test_interval_header_is_short_and_methods_are_one_note(tmp_path):
    _metrics(tmp_path)
    html = render_report(tmp_path)
    q = _section(html, "quality")
    headers = re.findall(r"<th[^>]*>([^<]*interval[^<]*)</th>", q)
    assert headers and set(headers) == {"95% interval"}
    text = _text(q)
    assert text.count("Richardson") == 1 and text.count("percentile bootstrap") == 1
    assert re.search(r"FID[^.;]*: calibrated", text) and re.search(r"KID[^.;]*: calibrated", text)
    assert re.search(r"precision, recall[^.;]*: not calibrated", text)


def test_fid_interval_sits_beside_the_bias_corrected_value_it_belongs_to(tmp_path):
    _metrics(tmp_path)
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">([^<]*)</td>"
                      r"<td class=\"num\">([^<]*)</td>", render_report(tmp_path))
    by = {label: (value, ci) for label, value, ci in rows}
    assert by["FID"] == ("24.705", "–")
    corrected = [k for k in by if k.startswith("FID, bias-corrected")]
    assert corrected and by[corrected[0]] == ("15.788", "[12.931, 18.645]")
    assert "extrapolated" in _text(render_report(tmp_path))


def test_relative_fd_reading_names_the_matched_fid_it_divides(tmp_path):
    _metrics(tmp_path, fid_matched=36.949)
    assert "FID at the floor's image counts (36.949) divided by the floor" in _text(
        render_report(tmp_path))


def test_without_a_corrected_fid_the_interval_stays_on_fid(tmp_path):
    _metrics(tmp_path, fid_corrected=None, ci_method={"fid": "percentile bootstrap"})
    html = render_report(tmp_path)
    assert "bias-corrected" not in html
    assert re.search(r"<td>FID</td><td class=\"num\">24.705</td><td class=\"num\">"
                     r"\[12.931, 18.645\]</td>", html)


def test_per_class_dashes_say_why_and_how_many_images_are_needed(tmp_path):
    _metrics(tmp_path)
    text = _text(_section(render_report(tmp_path), "quality")).split("Per class")[1]
    assert "too few real test images" in text
    for needed in ("187", "374", "50"):
        assert re.search(rf"\b{needed}\b", text), needed
    assert "benign" in text and "26" in text and "malignant" in text and "13" in text


def test_saturated_arms_are_called_a_ceiling_in_summary_and_utility(tmp_path):
    _utility(tmp_path, ARMS)
    html = render_report(tmp_path)
    for name in ("summary", "utility"):
        text = _text(_section(html, name))
        assert "too easy" in text and "ceiling" in text, name
    assert "ceiling" in _text(_section(html, "utility")).split("Paired comparisons")[1]


def test_arms_that_differ_are_not_called_a_ceiling(tmp_path):
    arms = dict(ARMS, **{"real+classic": (0.0, [0.9, 0.92, 0.91]),
                         "real+classic+synthetic": (1.0, [0.95, 0.94, 0.96])})
    _utility(tmp_path, arms)
    assert "ceiling" not in _text(render_report(tmp_path))


def test_the_caption_mentions_the_recipe_line_only_when_it_is_drawn(tmp_path):
    """The dotted recipe line is drawn only within the curves' steps (figures.curves_uri)."""
    _train(tmp_path, ["finished at step 1000", SHORT])
    assert "dotted line" not in render_report(tmp_path)


def test_warnings_point_to_the_per_class_note_not_to_json_keys(tmp_path):
    _metrics(tmp_path, warnings=[
        "per-class values left null for benign (n_real=26), malignant (n_real=13): too few real "
        "test images for them (reasons under per_class.<class>.unreliable)"])
    text = _text(render_report(tmp_path))
    assert "per_class.<class>.unreliable" not in text
    assert "too few real test images for them (see the note under the per-class table)" in text


def test_multiclass_utility_says_what_each_number_is_with_per_class_values(tmp_path):
    """Issue 19 item 3: macro averages were unlabelled and per-class values missing."""
    from synthmed.tasks.metrics import metric_definitions

    _utility(tmp_path, ARMS)
    path = tmp_path / "utility" / "utility.json"
    u = json.loads(path.read_text())
    names = ["g1", "g2", "g3"]
    u["dataset"] = {"class_names": names}
    u["metric_definitions"] = metric_definitions(3, None, ordinal=True)
    for r in u["runs"]:
        r["test"]["per_class"] = {c: {"sensitivity": 0.5 + 0.1 * k, "specificity": 0.9}
                                  for k, c in enumerate(names)}
    u["summary"] += [{"arm": "real+classic", "ratio": 0.0, "metric": "kappa_qw", "n": 3,
                      "mean": 0.61, "ci95": [0.5, 0.7]}]
    path.write_text(json.dumps(u))
    text = _text(_section(render_report(tmp_path), "utility"))
    assert "macro average over the 3 classes of one-vs-rest sensitivity" in text
    assert "QW kappa" in text and "0.61" in text
    assert "Per class (one-vs-rest on test, mean over seeds)" in text
    assert "real+classic g3 0.700 0.900" in text


def _summary(rd: Path, groups: str, n_groups: int) -> None:
    (rd / "stages").mkdir(parents=True, exist_ok=True)
    (rd / "data").mkdir(parents=True)
    (rd / "data" / "summary.json").write_text(json.dumps(
        {"path": "ds", "name": "five", "n": 1600, "splits": {"train": 1000, "val": 300,
                                                             "test": 300},
         "classes": {"0": 800, "1": 800}, "class_counts_by_split": {}, "n_groups": n_groups,
         "size": [28, 28], "channels": 3, "has_masks": False, "split": {"groups": groups}}))


def test_data_without_patient_ids_says_so_and_what_it_weakens(tmp_path):
    """Issue 19 item 4: the report said "1,600 from 1,600 patients / groups"."""
    from synthmed.data.importer import DEFAULT_GROUPS

    _summary(tmp_path, DEFAULT_GROUPS, 1600)
    text = _text(_section(render_report(tmp_path), "dataset"))
    assert "1,600 patients" not in text and "no patient IDs" in text
    assert "leakage" in text and "privacy" in text


def test_data_with_patient_ids_counts_patients(tmp_path):
    _summary(tmp_path, "--group-regex '^(case[0-9]+)_'", 400)
    text = _text(_section(render_report(tmp_path), "dataset"))
    assert "from 400 patients / groups" in text and "No patient IDs" not in text


def test_per_class_note_names_the_split_compared_against(tmp_path):
    """Issue 19 item 8: the note said "too few real test images" when the reference was val."""
    _metrics(tmp_path, real={"split": "val", "n": 39})
    text = _text(_section(render_report(tmp_path), "quality"))
    assert "too few real val images" in text and "real test images" not in text


def test_privacy_table_shows_membership_auc_in_pixels_and_features(tmp_path):
    """Issue 19 item 7: the table showed the pixel AUC (0.507), the verdict used features' 0.546."""
    _metrics(tmp_path, membership_auc=0.507, membership_auc_features=0.546, copy_rate=0.05)
    text = _text(_section(render_report(tmp_path), "quality"))
    assert "membership AUC (pixels) 0.507" in text and "membership AUC (features) 0.546" in text


def test_realism_and_spectral_rows(tmp_path):
    from synthmed.report.results import _realism, _spectral

    m = {"realism": {"auc": 0.93, "auc_ci_low": 0.9, "auc_ci_high": 0.96, "p_value": 0.01,
                     "floor": {"auc": 0.49}, "per_class": {"a": {"auc": 0.9}}},
         "spectral": {"distance": 0.2, "distance_floor": 0.03, "checkerboard": 0.3,
                      "checkerboard_real_range": 0.1, "half_nyquist": 0.0,
                      "half_nyquist_real_range": 0.05, "artefacts": ["checkerboard artefacts: x"]}}
    r, s = _realism(m, tmp_path), _spectral(m, tmp_path)
    assert r["auc"] == "0.930" and "easily" in r["reading"] and r["per_class"][0]["name"] == "a"
    assert r["most"] is None  # no grid file: no figure
    assert s["checkerboard"] == "1.995" and s["checkerboard_range"].startswith("0.794x to")
    assert s["artefacts"] == ["checkerboard artefacts: x"]
    assert _realism({"realism": {"auc": None}}, tmp_path) is None
