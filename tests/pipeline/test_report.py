"""``synthmed report``: self-contained, every section, optional keys, no raw JSON."""

from __future__ import annotations

import json
import re

import pytest

from synthmed.errors import SynthmedError
from synthmed.report import build_report, render_report

pytestmark = pytest.mark.slow
SECTIONS = ("summary", "dataset", "training", "images", "quality", "utility", "about")


def _text(html: str) -> str:
    """The page's visible text: tags and embedded images removed."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_report_is_self_contained_with_every_section(tiny_run):
    html = (tiny_run / "report.html").read_text(encoding="utf-8")
    for s in SECTIONS:
        assert f'<section id="{s}">' in html
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from a network
    text = _text(html)
    for words in ("Images per split and class", "benign", "malignant", "steps/s",
                  "real vs real", "Paired comparisons", "ROC", "2.13.0"):
        assert words in html, words
    assert not re.search(r"[{\[]\s*['\"]\w+['\"]\s*:", text), "raw JSON/dict in the page"


def test_the_runs_own_verdict_is_shown(tiny_run):
    """The evaluation stage's verdict (synthmed.metrics.verdict) appears as its three lines."""
    m = json.loads((tiny_run / "evaluate" / "metrics.json").read_text())
    text = _text((tiny_run / "report.html").read_text(encoding="utf-8"))
    for aspect in ("fidelity", "diversity", "privacy"):
        rating = m["verdict"][aspect]["rating"]
        assert rating in text
    assert "verdict: not available in this run" not in text


def test_missing_verdict_and_sanity_say_not_available(tiny_copy):
    path = tiny_copy / "evaluate" / "metrics.json"
    m = json.loads(path.read_text())
    m.pop("verdict", None), m.pop("sanity", None)
    for group in m.get("extractors", {}).values():
        group.pop("sanity", None)
    path.write_text(json.dumps(m))
    text = _text(build_report(tiny_copy).read_text(encoding="utf-8"))
    assert "verdict: not available in this run" in text
    assert "sanity ladder: not available in this run" in text


def test_verdict_and_sanity_are_shown_when_present(tiny_copy):
    path = tiny_copy / "evaluate" / "metrics.json"
    m = json.loads(path.read_text())
    m["verdict"] = {"fidelity": {"rating": "poor", "line": "relative FD 3.0 above 2 (poor)"},
                    "diversity": "diversity: borderline (recall 0.25, coverage 0.17)",
                    "privacy": {"verdict": "good", "text": "copy rate 0.00, membership AUC 0.59"}}
    m["sanity"] = {"passed": False, "rule": "worse than real on all three", "real": {
        "fid": 1.0, "precision": 0.8, "density": 1.0}, "rungs": {
        "noise": {"fid": 50.0, "precision": 0.0, "density": 0.0, "passed": True},
        "blur": {"fid": 1.1, "precision": 0.8, "density": 0.9, "passed": False}}}
    path.write_text(json.dumps(m))
    html = build_report(tiny_copy).read_text(encoding="utf-8")
    assert 'class="pill poor"' in html and 'class="pill borderline"' in html
    assert 'class="pill good"' in html and "relative FD 3.0 above 2" in html
    assert "not available in this run" not in html.split('id="dataset"')[0]
    assert "<strong>Failed</strong>" in html and ">blur<" in html


def test_report_of_a_partial_run_marks_missing_sections(tiny_copy):
    import shutil

    for stage in ("evaluate", "utility"):
        (tiny_copy / "stages" / f"{stage}.json").unlink()
        shutil.rmtree(tiny_copy / stage)
    text = _text(render_report(tiny_copy))
    assert "The evaluation: not available in this run" in text
    assert "Downstream utility: not available in this run" in text


def test_not_a_run_directory(tmp_path):
    with pytest.raises(SynthmedError, match="not a `synthmed run` directory"):
        render_report(tmp_path)


def test_real_samples_keep_the_datasets_masks(tiny_run):
    """The phantom has masks: the run keeps them beside its real samples, for the report's
    mask | real rows of a mask-to-image run."""
    import numpy as np

    with np.load(tiny_run / "data" / "real_samples.npz") as z:
        assert "masks" in z.files
        assert len(z["masks"]) == len(z["images"]) and z["masks"].max() > 0
