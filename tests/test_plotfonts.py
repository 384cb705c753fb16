"""Class names matplotlib cannot draw (issue 19: CJK class names printed 31 "Glyph missing"
warnings and drew boxes): a font with the glyphs when one is installed, else class indices."""

from __future__ import annotations

import warnings

import numpy as np

from synthmed.plotfonts import drawable


def test_latin_names_are_kept():
    assert drawable(["benign", "malignant"]) == (["benign", "malignant"], {})


def test_cjk_names_get_a_font_or_indices(monkeypatch):
    import synthmed.plotfonts as pf

    labels, font = drawable(["良性", "恶性"])
    assert (labels, font) == (["class 0", "class 1"], {}) or (labels == ["良性", "恶性"]
                                                             and font["fontfamily"])
    monkeypatch.setattr(pf, "font_for", lambda chars: None)  # a machine without a CJK font
    assert drawable(["良性", "恶性"]) == (["class 0", "class 1"], {})


def test_plots_with_cjk_names_warn_about_no_missing_glyph(tmp_path):
    from synthmed.metrics.plots import per_class_bars
    from synthmed.tasks.plots import plot_confusion

    names = ["良性结节", "恶性肿瘤", "正常"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph ... missing from font" warning fails the test
        plot_confusion({("real", 0.0): np.eye(3, dtype=int)}, names, tmp_path / "c.png")
        per_class_bars({n: {"fid": 1.0, "fid_real_real": 0.5, "precision": 0.5, "recall": 0.5,
                            "coverage": 0.5} for n in names}, tmp_path / "p.png")
    assert (tmp_path / "c.png").is_file() and (tmp_path / "p.png").is_file()
