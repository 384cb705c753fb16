"""``synthmed evaluate``: fidelity, diversity and privacy of a synthetic set -> metrics.json.

The reference (``--real``) should be *held-out* real images (default split ``test``): they are
what the synthetic set is compared with, and the "new patients" of the privacy audit. ``--train``
(default: the same dataset's ``train`` split) is what the generator saw: the privacy audit looks
for copies of it, and the domain extractor is trained on it. metrics.json is flat for the primary
(first) extractor, with every extractor's numbers under ``extractors.<name>``; a metric that was
not requested or could not be computed is null, and ``warnings`` says why.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from synthmed import __version__
from synthmed.errors import ConfigError, DataError, SynthmedError
from synthmed.fileio import atomic_write_json, atomic_write_text
from synthmed.metrics import plots
from synthmed.metrics.cache import feature_key, load_features, save_features
from synthmed.metrics.compare import GROUP_KEYS, compare_features, per_class
from synthmed.metrics.features import FEATURE_EXTRACTORS, RESIZE_METHOD, FeatureExtractor, Features
from synthmed.metrics.fidelity import MS_SSIM_PROTOCOL, ms_ssim_pairs
from synthmed.metrics.inputs import ImageSet, load_images, load_split, match_size, parse_ref
from synthmed.metrics.judge import class_pairs, judge, write_judge
from synthmed.metrics.privacy import (
    COPY_PERCENTILE,
    DUPLICATE_RMS,
    PrivacyResult,
    audit,
    closest_pairs_grid,
    pixel_vectors,
)
from synthmed.metrics.sanity import sanity_block, sanity_warnings
from synthmed.metrics.verdict import verdict

SCHEMA = "synthmed-metrics"
SCHEMA_VERSION = 1
METRICS = ("fid", "kid", "is", "prdc", "ms_ssim", "privacy", "c2st", "spectral", "labels")
FEATURE_METRICS = {"fid", "kid", "is", "prdc", "privacy"}  # the ones that need an extractor
PIXEL_KEYS = ("ms_ssim", "ms_ssim_std", "ms_ssim_real", "ms_ssim_real_std", "ms_ssim_pairs",
              "copy_rate", "copy_threshold", "copy_ratio_threshold", "n_copies", "membership_auc",
              "membership_auc_ci95", "membership_auc_ci_unit", "nn_distance_median",
              "heldout_nn_distance_median", "n_heldout_duplicates")
FEATURE_PRIVACY_KEYS = tuple(f"{k}_features" for k in PIXEL_KEYS[5:])
PREPROCESSING = {"resize": RESIZE_METHOD, "gray_to_rgb": "channel repeated 3 times",
                 "pixel_space": "RMS of [0, 1] intensities at the training images' size",
                 "ms_ssim": MS_SSIM_PROTOCOL}


def parse_metrics(metrics: str | list[str] | tuple[str, ...] | set[str] | None) -> set[str]:
    """None -> all; ``"fid,kid"`` or a list -> that set; unknown names are errors (--metrics)."""
    if metrics is None:
        return set(METRICS)
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [m for m in names if m]
    for m in names:
        if m not in METRICS:
            raise ConfigError(f"--metrics: unknown metric {m!r}; choose from {', '.join(METRICS)}")
    return set(names)


def parse_features(features: str | list[str] | tuple[str, ...]) -> list[str]:
    """``domain``, ``inception``, ``both`` (domain,inception), a comma list or registered names."""
    if isinstance(features, str):
        names = ["domain", "inception"] if features == "both" else features.split(",")
    else:
        names = list(features)
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not names:
        raise ConfigError("--features: name at least one extractor")
    for n in names:
        FEATURE_EXTRACTORS.get(n, key="--features")
    return names


def cached_features(ex: FeatureExtractor, images: ImageSet,
                    cache_dir: str | os.PathLike | None = None) -> Features:
    """Features of a prepared-dataset split, cached under (content hash, split, preprocessing,
    weights hash); synthetic sets (no content hash) are always computed."""
    if images.content_hash is None or images.split is None:
        return ex.extract(images.images)
    key = feature_key(images.content_hash, images.split, ex.preprocessing, ex.weights_sha256)
    hit = load_features(key, cache_dir)
    if hit is not None and len(hit[0]) == len(images):
        return Features(*hit)
    f = ex.extract(images.images)
    save_features(key, f.features, f.probs, cache_dir)
    return f


def _resolve_train(train, real: ImageSet, warnings: list[str]) -> ImageSet | None:
    if train is not None:
        path, split = parse_ref(train, "train")
        return load_split(path, split)
    if real.kind != "dataset" or {"train", "all"} & set(str(real.split).split("+")):
        return None
    try:
        out = load_split(real.path, "train")
    except DataError:
        warnings.append(f"{real.path} has no train split and --train was not given: no privacy "
                        "audit, and the domain extractor needs --extractor")
        return None
    warnings.append(f"--train not given: using {real.path}:train")
    return out


def _heldout_ok(real: ImageSet, train: ImageSet | None, warnings: list[str]) -> bool:
    """The privacy audit needs held-out real images that are not training images."""
    if train is None or real.content_hash is None or real.content_hash != train.content_hash:
        return train is not None
    a, b = set(str(real.split).split("+")), set(str(train.split).split("+"))
    if "all" in a | b or a & b:
        warnings.append(f"--real split {real.split!r} overlaps --train split {train.split!r}: the "
                        "fidelity reference includes the generator's own training images, so FID, "
                        "KID and PRDC measure closeness to what it saw (memorizing scores best) "
                        "and there are no held-out images: no copy threshold or membership AUC. "
                        "Use this only when the test split is too small to compare with")
        return False
    return True


TINY_TEST = 50  # fewer held-out real images: suggest a larger reference
# Below this many member images, a domain extractor trained on the members places them closer to
# any similar image than new patients: LGG null controls (real new patients audited as if
# synthetic) gave feature membership AUC 0.91 at 92 members, 0.74 at 256, 0.51 at 1,097
# (docs/results.md section 4, fourth round).
MEMBER_EXTRACTOR_MIN = 1000
BIAS_KEY = "membership_auc_features_biased"


def _member_trained(ex: FeatureExtractor, train: ImageSet) -> bool:
    """Whether ``ex`` was trained on (part of) the audit's member images, and they are few."""
    t = (ex.info or {}).get("trained_on") or {}
    if not t or train.content_hash is None or t.get("content_hash") != train.content_hash:
        return False
    a, b = set(str(t.get("split")).split("+")), set(str(train.split).split("+"))
    return bool(a & b or "all" in a | b) and len(train) < MEMBER_EXTRACTOR_MIN


def _tiny_real_warning(real: ImageSet, warnings: list[str]) -> None:
    if len(real) < TINY_TEST:
        warnings.append(f"--real {real.path}:{real.split} has only {len(real)} images: every "
                        "number is noisy and per-class values may be null; use a larger "
                        f"held-out split (e.g. {real.path}:val+test), or as a last resort "
                        f"--real {real.path}:train --train {real.path}:train (no privacy audit, "
                        "and fidelity then flatters memorization)")


def _build_extractors(names: list[str], *, extractor, train: ImageSet | None, inception_weights,
                      cache_dir, seed: int, epochs: int, warnings: list[str],
                      net_opts: dict[str, Any]) -> list[FeatureExtractor]:
    from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor

    out = []
    for name in names:
        if name == "domain" and isinstance(extractor, FeatureExtractor):
            out.append(extractor)
        elif name == "domain" and extractor is not None:
            out.append(load_domain_extractor(extractor))
        elif name == "domain":
            if train is None:
                raise SynthmedError("the domain extractor needs --extractor FILE, or --train "
                                    "DATASET_DIR:train to train one (cached per dataset and split)")
            path = train_domain_extractor(train.path, str(train.split), epochs=epochs, seed=seed,
                                          cache_dir=cache_dir)
            out.append(load_domain_extractor(path))
        elif name == "inception":
            try:
                out.append(FEATURE_EXTRACTORS.build("inception", weights=inception_weights))
            except SynthmedError as e:
                if len(names) == 1:
                    raise
                warnings.append(f"inception features skipped: {e}")
        else:
            out.append(FEATURE_EXTRACTORS.build(name, key="--features", path=extractor,
                                                **{k: v for k, v in net_opts.items() if v}))
    return out


def _ms_ssim(synth: ImageSet, real: ImageSet, pairs: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prefix, s in (("ms_ssim", synth), ("ms_ssim_real", real)):
        res = ms_ssim_pairs(s.images, n_pairs=pairs, seed=seed)
        out[prefix], out[f"{prefix}_std"] = (res[0], res[1]) if res else (None, None)
        if prefix == "ms_ssim" and res:
            out["ms_ssim_pairs"] = res[2]
    return out


def _pixel_privacy(synth: ImageSet, train: ImageSet, real: ImageSet | None) -> PrivacyResult:
    size, ch = train.size, train.channels
    held = pixel_vectors(real.images, size=size, channels=ch) if real is not None else None
    return audit(pixel_vectors(synth.images, size=size, channels=ch),
                 pixel_vectors(train.images, size=size, channels=ch), held, space="pixel",
                 train_groups=train.groups,
                 heldout_groups=real.groups if real is not None else None)


def _pixel_block(synth: ImageSet, real: ImageSet, train: ImageSet | None, heldout: bool,
                 wanted: set[str], pairs: int, seed: int, privacy: list[PrivacyResult],
                 warnings: list[str]) -> dict[str, Any]:
    """The extractor-free numbers: MS-SSIM diversity and the pixel-space privacy audit (its
    result goes first in ``privacy``, for the plots and nearest.csv)."""
    pixel: dict[str, Any] = dict.fromkeys(PIXEL_KEYS)
    if "ms_ssim" in wanted:
        pixel.update(_ms_ssim(synth, real, pairs, seed))
    if "privacy" in wanted and train is not None:
        res = _pixel_privacy(synth, train, real if heldout else None)
        pixel.update(res.summary())
        privacy.insert(0, res)
    elif "privacy" in wanted:
        warnings.append("no training set: no privacy audit (pass --train DATASET_DIR:train)")
    return pixel


def _nearest_csv(synth: ImageSet, train: ImageSet, results: list[PrivacyResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["synthetic_index", "synthetic_id", "class"]
    for r in results:
        head += [f"{r.space}_train_index", f"{r.space}_train_id", f"{r.space}_distance",
                 f"{r.space}_distance_ratio", f"{r.space}_near_copy"]
    w.writerow(head)
    for i in range(len(synth)):
        k = int(synth.labels[i])
        row = [i, synth.ids[i] if synth.ids else "",
               synth.class_names[k] if 0 <= k < len(synth.class_names) else ""]
        for r in results:
            t = int(r.synth_nn_index[i])
            ratio = "" if r.synth_ratio is None else f"{r.synth_ratio[i]:.6g}"
            row += [t, train.ids[t] if train.ids else "", f"{r.synth_nn_dist[i]:.6g}", ratio,
                    int(r.flagged[i])]
        w.writerow(row)
    return buf.getvalue()


def _extractor_group(ex: FeatureExtractor, real: ImageSet, synth: ImageSet, train: ImageSet | None,
                     heldout: bool, wanted: set[str], opts: dict, warnings: list[str],
                     duplicates: np.ndarray | None = None) -> tuple[dict, PrivacyResult | None]:
    """All one extractor measures: fidelity with floors and CIs, per class, feature privacy."""
    fr = cached_features(ex, real, opts["cache_dir"])
    fs = ex.extract(synth.images)
    group, w = compare_features(fr, fs, metrics=wanted, seed=opts["seed"],
                                n_bootstrap=opts["n_bootstrap"], confidence=opts["confidence"],
                                kid_subsets=opts["kid_subsets"], prdc_k=opts["prdc_k"])
    warnings += [f"{ex.name}: {m}" for m in w]
    group = {**ex.describe(real.size), **group, **dict.fromkeys(FEATURE_PRIVACY_KEYS)}
    if ex.input_size and synth.size != ex.input_size:
        group["synthetic_resized_from"] = list(synth.size)
    pairs = class_pairs(real, synth)
    group["per_class"] = per_class(fr, fs, real.labels, synth.labels, pairs, metrics=wanted,
                                   seed=opts["seed"], prdc_k=opts["prdc_k"],
                                   classifier_names=ex.info.get("class_names")) if pairs else {}
    res = None
    if "privacy" in wanted and train is not None:
        ft = cached_features(ex, train, opts["cache_dir"])
        res = audit(fs.features, ft.features, fr.features if heldout else None,
                    space=f"{ex.name}_features", heldout_duplicates=duplicates,
                    train_groups=train.groups, heldout_groups=real.groups)
        group.update(res.summary("_features"))
        group[BIAS_KEY] = (group.get("membership_auc_features") is not None
                           and _member_trained(ex, train))
        if group[BIAS_KEY]:
            warnings.append(
                f"{ex.name}: the feature-space membership AUC "
                f"({group['membership_auc_features']:.3f}) comes from an extractor trained on "
                f"the {len(train)} member images themselves, which places them closer to any "
                "similar image than new patients (real new patients scored 0.74-0.91 on LGG at "
                "this size): it is left out of the privacy verdict; read the pixel AUC, or pass "
                "--extractor trained on the val split (docs/metrics.md)")
    return group, res


def to_json(obj: Any) -> Any:
    """numpy scalars -> Python numbers, NaN/inf -> None (strict JSON), recursively."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _per_class_ms_ssim(pc: dict[str, dict], real: ImageSet, synth: ImageSet, pairs: int,
                       seed: int) -> None:
    """Within-class MS-SSIM of the synthetic and the real images (mode collapse hides there)."""
    for name, ri, si in class_pairs(real, synth):
        for key, s, k in (("ms_ssim", synth, si), ("ms_ssim_real", real, ri)):
            r = ms_ssim_pairs(s.images[s.labels == k], n_pairs=pairs, seed=seed)
            pc.setdefault(name, {})[key] = r[0] if r else None


def _resize_warnings(exs: list[FeatureExtractor], real: ImageSet, synth: ImageSet,
                     warnings: list[str]) -> None:
    for ex in exs:
        for what, s in (("real", real), ("synthetic", synth)):
            if ex.input_size and s.size != ex.input_size:
                warnings.append(f"{ex.name}: {what} images resized from {s.size[0]}x{s.size[1]} "
                                f"to {ex.input_size[0]}x{ex.input_size[1]} for the extractor")


def _write_outputs(out: Path, result: dict, synth: ImageSet, train: ImageSet | None,
                   privacy: list[PrivacyResult], plots_on: bool) -> None:
    files = result["files"]
    if privacy and train is not None:
        atomic_write_text(out / "nearest.csv", _nearest_csv(synth, train, privacy))
        files["nearest"] = "nearest.csv"
    if plots_on and privacy and train is not None:
        for r in privacy:
            name = "closest_pairs.png" if r.space == "pixel" else f"closest_pairs_{r.space}.png"
            closest_pairs_grid(synth.images, train.images, r, out / name)
            files[f"closest_pairs_{r.space}"] = name
        plots.distance_histograms(privacy, out / "nearest_distances.png")
        files["nearest_distances"] = "nearest_distances.png"
    if plots_on and result["per_class"]:
        plots.per_class_bars(result["per_class"], out / "per_class.png")
        files["per_class"] = "per_class.png"
    atomic_write_json(out / "metrics.json", result)


def evaluate(real: str | os.PathLike, synthetic: str | os.PathLike, *,
             train: str | os.PathLike | None = None, features: str | list[str] = "domain",
             metrics: str | list[str] | None = None,
             extractor: str | os.PathLike | FeatureExtractor | None = None,
             out: str | os.PathLike, seed: int = 0,
             inception_weights: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None, n_bootstrap: int = 100,
             confidence: float = 0.95, extractor_epochs: int = 15, kid_subsets: int = 100,
             prdc_k: int = 5, ms_ssim_n_pairs: int = 200, plots: bool = True,
             device: str = "auto", input_size: int | tuple[int, int] | None = None,
             in_channels: int | None = None, segmenter: str | os.PathLike | None = None,
             segmenter_epochs: int = 10) -> dict[str, Any]:
    """Evaluate ``synthetic`` against held-out ``real`` (and ``train`` for privacy); writes
    ``out/metrics.json`` (plus nearest.csv and PNG plots) and returns the same dict.
    ``device`` runs the feature networks (``auto``: a GPU when there is one); the domain extractor
    always trains on the CPU, so it is the same file on every machine. ``input_size`` and
    ``in_channels`` feed a ``torchscript`` extractor (default: the images' size, 1 channel).
    ``segmenter`` (a file) or one trained for ``segmenter_epochs`` on ``train`` scores the label
    consistency of an image+mask pair set (:mod:`synthmed.metrics.consistency`)."""
    t0 = time.perf_counter()
    wanted, names = parse_metrics(metrics), parse_features(features)
    warnings: list[str] = []
    real_set = load_images(real, "test")
    if real_set.kind != "dataset":
        raise DataError(f"--real {real}: expected a prepared dataset (DATASET_DIR[:split])")
    synth, notice = match_size(load_images(synthetic, "all"), real_set)
    if notice:
        warnings.append(notice)
    notices = [s.meta["notice"] for s in (synth,) if "notice" in s.meta]
    _tiny_real_warning(real_set, warnings)
    train_set = _resolve_train(train, real_set, warnings)
    heldout = _heldout_ok(real_set, train_set, warnings)
    exs = _build_extractors(names, extractor=extractor, train=train_set,
                            inception_weights=inception_weights, cache_dir=cache_dir, seed=seed,
                            epochs=extractor_epochs, warnings=warnings,
                            net_opts={"input_size": input_size, "in_channels": in_channels}
                            ) if wanted & FEATURE_METRICS else []
    from synthmed.device import resolve_device

    dev = resolve_device(device)
    for ex in exs:
        ex.to(dev)
    opts = {"cache_dir": cache_dir, "seed": seed, "n_bootstrap": n_bootstrap,
            "confidence": confidence, "kid_subsets": kid_subsets, "prdc_k": prdc_k}
    privacy: list[PrivacyResult] = []
    pixel = _pixel_block(synth, real_set, train_set, heldout, wanted, ms_ssim_n_pairs, seed,
                         privacy, warnings)
    dup = privacy[0].heldout_duplicates if privacy else None  # found in pixel space
    realism, spectral, scores = judge(real_set, synth, wanted, seed=seed, confidence=confidence,
                                      warnings=warnings)
    groups = {}
    for n, ex in enumerate(exs):
        groups[ex.name], res = _extractor_group(ex, real_set, synth, train_set, heldout, wanted,
                                                opts, warnings, dup)
        if res is not None and n == 0:
            privacy.append(res)  # the primary extractor's audit goes into plots and nearest.csv
    labels = None
    if "labels" in wanted:
        from synthmed.metrics.consistency import consistency_block

        labels = consistency_block(synth, real_set, train_set, segmenter=segmenter,
                                   epochs=segmenter_epochs, seed=seed, cache_dir=cache_dir,
                                   explicit=metrics is not None, warnings=warnings)
    warnings += sanity_warnings(groups)  # a feature space that flatters noise is reported
    primary = groups[exs[0].name] if exs else {}
    pc = {c: dict(row) for c, row in primary.get("per_class", {}).items()}
    if "ms_ssim" in wanted:
        _per_class_ms_ssim(pc, real_set, synth, ms_ssim_n_pairs, seed)
    _resize_warnings(exs, real_set, synth, warnings)
    small = [f"{c} (n_real={row['n_real']}: {', '.join(row['unreliable'])})"
             for c, row in pc.items() if row.get("unreliable")]
    if small:  # name the split compared against (was always "test") and the values left out
        split = real_set.split if real_set.kind == "dataset" and real_set.split else "reference"
        warnings.append(f"some per-class values left null, too few real {split} images for them: "
                        f"{', '.join(small)} (reasons under per_class.<class>.unreliable)")
    flat = {k: primary.get(k) for k in ("extractor", "weights_sha256", *GROUP_KEYS,
                                        *FEATURE_PRIVACY_KEYS, BIAS_KEY)}
    result: dict[str, Any] = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "synthmed_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed, "metrics_requested": sorted(wanted), "features_requested": names,
        **flat, **pixel, "n_train": len(train_set) if train_set is not None else None,
        "label_consistency_ratio": labels["dice_ratio"] if labels else None,
        "lesion_detection_rate": labels["synthetic"]["detection_rate"] if labels else None,
        "label_consistency": labels,
        "sanity": sanity_block(exs[0].name, primary) if exs else None,
        "realism": realism, "spectral": spectral,
        "extractors": groups, "per_class": pc, "real": real_set.describe(),
        "synthetic": synth.describe(),
        "train": train_set.describe() if train_set is not None else None,
        "preprocessing": PREPROCESSING,
        "privacy": {"copy_percentile": COPY_PERCENTILE, "heldout": "--real" if heldout else None,
                    "feature_space": exs[0].name if exs else None,
                    "duplicate_rms": DUPLICATE_RMS},
        "notices": notices, "warnings": warnings, "files": {"metrics": "metrics.json"},
    }
    result["verdict"] = verdict(to_json(result))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result["elapsed_s"] = round(time.perf_counter() - t0, 3)
    result = to_json(result)
    write_judge(out, result, synth, scores, plots)
    _write_outputs(out, result, synth, train_set, privacy, plots)
    return result
