"""``evaluate``'s realism judge: the classifier two-sample test and the spectral artefacts on the
evaluation's image sets, and what they write (realism.csv, the most / least real-looking grids,
the spectrum plot). The tests themselves are :mod:`synthmed.metrics.realism` and
:mod:`synthmed.metrics.spectral`."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_write_text
from synthmed.metrics import plots
from synthmed.metrics.imageset import ImageSet
from synthmed.metrics.realism import realism_block
from synthmed.metrics.spectral import spectral_artefacts

JUDGE_METRICS = ("c2st", "spectral")


def class_pairs(real: ImageSet, synth: ImageSet) -> list[tuple[str, int, int]]:
    """(name, real index, synthetic index) of classes present in both sets (conditional sets)."""
    if not real.labelled or not synth.labelled:
        return []
    return [(c, real.class_names.index(c), k) for k, c in enumerate(synth.class_names)
            if c in real.class_names and (synth.labels == k).any()
            and (real.labels == real.class_names.index(c)).any()]


def same_form(real: np.ndarray, synth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as one dtype and channel count (grey repeated / colour averaged, as the feature
    extractors adapt them), so a grey-vs-colour or 8-vs-16-bit pair is still compared."""
    if real.shape[1] == synth.shape[1] and real.dtype == synth.dtype:
        return real, synth
    from synthmed.metrics.extractor import prepare_images

    def as8(x: np.ndarray, ch: int) -> np.ndarray:
        return prepare_images(np.asarray(x), channels=ch, input_range="uint8").numpy()

    ch = real.shape[1]
    return as8(real, ch), as8(synth, ch)


def judge(real: ImageSet, synth: ImageSet, wanted: set[str], *, seed: int, confidence: float,
          warnings: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                        np.ndarray | None]:
    """(realism block, spectral block, per-synthetic-image realism scores); None when not
    requested or not computable (with a warning saying why)."""
    realism = spectral = scores = None
    real_images, synth_images = same_form(np.asarray(real.images), np.asarray(synth.images))
    if "c2st" in wanted:
        try:
            realism, scores = realism_block(real_images, synth_images, seed=seed,
                                            real_labels=real.labels, synth_labels=synth.labels,
                                            pairs=class_pairs(real, synth), confidence=confidence)
        except SynthmedError as e:
            warnings.append(f"no classifier two-sample test: {e}")
    if "spectral" in wanted:
        spectral = spectral_artefacts(real_images, synth_images, seed=seed)
        if spectral is None:
            warnings.append("no spectral comparison: fewer than 10 images on a side")
        else:
            warnings += spectral["artefacts"]
    return realism, spectral, scores


def realism_csv(synth: ImageSet, scores: np.ndarray) -> str:
    """One row per synthetic image: index, id, class, realism score and its rank (1 = most
    real-looking)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["synthetic_index", "synthetic_id", "class", "realism_score", "rank"])
    rank = np.empty(len(scores), np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    for i, s in enumerate(scores):
        k = int(synth.labels[i])
        w.writerow([i, synth.ids[i] if synth.ids else "",
                    synth.class_names[k] if 0 <= k < len(synth.class_names) else "",
                    f"{s:.6g}", int(rank[i])])
    return buf.getvalue()


def write_judge(out: Path, result: dict, synth: ImageSet, scores: np.ndarray | None,
                plots_on: bool) -> None:
    """realism.csv, most_real.png, least_real.png and spectrum.png (named in result["files"])."""
    files = result["files"]
    if scores is not None:
        atomic_write_text(out / "realism.csv", realism_csv(synth, scores))
        files["realism"] = "realism.csv"
        if plots_on:
            for most, name in ((True, "most_real.png"), (False, "least_real.png")):
                plots.realism_grid(synth.images, scores, out / name, most=most)
                files[name[:-4]] = name
    if plots_on and result.get("spectral"):
        plots.spectrum_plot(result["spectral"], out / "spectrum.png")
        files["spectrum"] = "spectrum.png"
