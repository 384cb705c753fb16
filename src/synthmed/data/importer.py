"""``synthmed data import``: raw files -> preprocessing -> patient-exclusive split -> dataset.

One function, :func:`import_dataset`, with explicit keyword options (the CLI passes them through).
Nothing is written until every image has been read, and the output directory is built beside its
final place and renamed into it, so a failed or interrupted import leaves no half dataset.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.data.dataset import write_prepared
from synthmed.data.folders import FolderSource, compile_group_regex, natural_key
from synthmed.data.layouts import recognise_layout
from synthmed.data.npz import NpzSource, fetch_medmnist, parse_npz_keys
from synthmed.data.preprocess import Preprocessor, check_memory, to_channels
from synthmed.data.readers import split_ext
from synthmed.data.splits import DEFAULT_FRACTIONS, group_stratified_split, parse_fractions
from synthmed.errors import DataError
from synthmed.paths import check_output

log = logging.getLogger("synthmed.data")
PROGRESS_MIN = 200
DEFAULT_GROUPS = ("each image is its own group "
                  "(no --group-regex, CSV group, PatientID or npz groups)")


def parse_class_names(spec: str | Sequence[str] | Mapping[str, str] | None
                      ) -> dict[str, str] | None:
    """Raw label -> class name, in class-index order.

    ``"0=benign,1=malignant"`` names integer labels; ``"benign,malignant"`` fixes the order of
    named labels; several raw values may share a name (``"2=benign,3=benign,4=malignant"``).
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
        items = [tuple(x.strip() for x in p.split("=", 1)) if "=" in p else (p, p)
                 for p in parts if p]
    out: dict[str, str] = {}
    for raw, name in items:
        if not raw or not name:
            raise DataError(f"--class-names {spec!r}: expected VALUE=NAME,... or NAME,NAME,...")
        if raw in out:
            raise DataError(f"--class-names {spec!r}: label {raw!r} is named twice")
        out[raw] = name
    if not out:
        raise DataError(f"--class-names {spec!r}: no class names given")
    return out


def _is_negative_int(text: str) -> bool:
    return text.startswith("-") and text[1:].isdigit()


def resolve_labels(raw: Sequence[str | None], *, class_map: Mapping[str, str] | None,
                   file_names: Sequence[str] | None, notices: list[str]
                   ) -> tuple[np.ndarray, list[str]]:
    """Raw label texts -> (class indices with -1 = unlabelled, class names)."""
    if class_map is not None:
        names = list(dict.fromkeys(class_map.values()))
        lookup = {k: names.index(v) for k, v in class_map.items()}
    elif file_names is not None:
        names = list(file_names)
        lookup = {str(i): i for i in range(len(names))}
    else:
        present = {r for r in raw if r is not None and not _is_negative_int(r)}
        numeric = all(r.lstrip("-").isdigit() for r in present)
        names = sorted(present, key=int if numeric else natural_key)
        lookup = {r: i for i, r in enumerate(names)}
    out = np.full(len(raw), -1, np.int64)
    negatives = 0
    for i, r in enumerate(raw):
        if r is None:
            continue
        if r in lookup:
            out[i] = lookup[r]
        elif _is_negative_int(r):
            negatives += 1
        else:
            where = "--class-names" if class_map is not None else "the file's class_names"
            raise DataError(f"label {r!r} has no class in {where} ({', '.join(names)}); "
                            f"add it (e.g. {r}=NAME) or drop it with --drop-label {r}")
    if negatives:
        notices.append(f"{negatives} image(s) with a negative label kept as unlabelled; "
                       "drop them with --drop-label -1")
    return out, names


def _open_source(source, *, medmnist, medmnist_size, npz_keys, labels_csv, no_labels,
                 class_map, mask_dir, mask_suffix, group_regex, axis, skip_empty_slices,
                 exclude, on_bad, nifti_rgb=False, notices=()):
    if medmnist:
        source = fetch_medmnist(medmnist, source or "~/.medmnist", size=medmnist_size)
    if source is None:
        raise DataError("SOURCE: pass a folder or file to import (or --medmnist NAME)")
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: path does not exist")
    if path.is_file() and split_ext(path.name)[1] == ".npz":
        for flag, value in (("--labels-csv", labels_csv), ("--mask-dir", mask_dir),
                            ("--mask-suffix", mask_suffix)):
            if value is not None:
                raise DataError(f"{flag}: does not apply to .npz sources; map arrays with "
                                "--npz-key (e.g. --npz-key masks=seg)")
        return NpzSource(path, keys=parse_npz_keys(npz_keys), skip_empty=skip_empty_slices)
    if npz_keys:
        raise DataError("--npz-key: applies only to .npz sources")
    known = set(class_map) if class_map is not None else None
    src = FolderSource(path, labels_csv=labels_csv, no_labels=no_labels, known_labels=known,
                       mask_dir=mask_dir, mask_suffix=mask_suffix, group_regex=group_regex,
                       axis=axis, skip_empty_slices=skip_empty_slices, exclude=exclude,
                       on_bad=on_bad, nifti_rgb=nifti_rgb)
    src.notices[:0] = notices
    return src


def _progress(items: Iterable, total: int, enabled: bool | None) -> Iterable:
    if enabled is None:
        enabled = total >= PROGRESS_MIN and sys.stderr.isatty()
    if not enabled:
        return items
    from rich.console import Console
    from rich.progress import track

    return track(items, total=total, description="importing", transient=True,
                 console=Console(stderr=True))


def _collect(src, pre: Preprocessor, drop: set[str], no_labels: bool, progress) -> dict[str, list]:
    """Read and preprocess every record; images of differing size are an error without --size."""
    cols: dict[str, list] = {k: [] for k in ("images", "masks", "labels", "groups", "names",
                                             "sources", "splits")}
    dropped: Counter = Counter()
    for rec in _progress(src, len(src), progress):
        label = None if no_labels else rec.label
        if label is not None and label in drop:
            dropped[label] += 1
            continue
        img, mask = pre(rec.image, rec.mask)
        first = cols["images"][0] if cols["images"] else img
        if img.shape[1:] != first.shape[1:]:
            raise DataError(f"{rec.source}: is {img.shape[1]}x{img.shape[2]} but "
                            f"{cols['sources'][0]} is {first.shape[1]}x{first.shape[2]}; "
                            "pass --size N to resize every image")
        for key, value in (("images", img), ("masks", mask), ("labels", label),
                           ("groups", rec.group), ("names", rec.name), ("sources", rec.source),
                           ("splits", rec.split)):
            cols[key].append(value)
    cols["dropped"] = [dict(dropped)]
    if not cols["images"]:
        what = " after --drop-label" if dropped else ""
        raise DataError(f"{getattr(src, 'path', getattr(src, 'root', 'SOURCE'))}: no images "
                        f"left{what}; check the source and options")
    return cols


def _unique_ids(names: list[str], sources: list[str]) -> list[str]:
    """File stems when unique, else prefixed with their folder, else numbered."""
    if len(set(names)) == len(names):
        return names
    ids = []
    for name, src in zip(names, sources, strict=True):
        parent = src.split("#")[0].rpartition("/")[0]
        ids.append(f"{parent.replace('/', '__')}__{name}" if parent else name)
    if len(set(ids)) != len(ids):
        ids = [f"{i:06d}_{x}" for i, x in enumerate(ids)]
    return ids


def _stack_channels(images: list[np.ndarray], channels: int | None, notices: list[str]
                    ) -> np.ndarray:
    counts = Counter(im.shape[0] for im in images)
    if channels is None:
        channels = max(counts, key=lambda c: (counts[c], c))
    elif channels not in (1, 3):
        raise DataError(f"--channels {channels}: choose 1 or 3")
    other = sum(v for c, v in counts.items() if c != channels)
    if other:
        kind = "grayscale image(s) to RGB" if channels == 3 else "RGB image(s) to grayscale"
        notices.append(f"converted {other} {kind} (mixed inputs; set --channels to choose)")
    return np.stack([to_channels(im, channels) for im in images])


def _assign_splits(cols, labels, groups, *, fractions, seed, resplit, class_names, notices,
                   allow_missing_class=False):
    official = cols["splits"]
    have = [s is not None for s in official]
    if any(have) and not resplit:
        if not all(have):
            raise DataError("the source gives a split for some images but not all; fill in every "
                            "split or pass --resplit")
        by_group: dict[str, set] = {}
        for g, s in zip(groups, official, strict=True):
            by_group.setdefault(g, set()).add(s)
        leaking = sum(len(v) > 1 for v in by_group.values())
        if leaking:
            notices.append(f"{leaking} group(s) appear in more than one official split")
        return np.array(official), {"method": "official (from the source)", "leaking_groups":
                                    leaking}
    splits = group_stratified_split(labels, groups, fractions, seed, class_names=class_names,
                                    allow_missing_class=allow_missing_class, notices=notices)
    return splits, {"method": "group-stratified", "fractions": list(fractions), "seed": seed}


def import_dataset(
    source: str | os.PathLike | None, out: str | os.PathLike, *,
    labels_csv: str | os.PathLike | None = None, no_labels: bool = False,
    class_names: str | Sequence[str] | Mapping[str, str] | None = None,
    drop_labels: Sequence[str | int] = (), mask_dir: str | os.PathLike | None = None,
    mask_suffix: str | None = None, group_regex: str | None = None,
    npz_keys: Sequence[str] | Mapping[str, str] | None = None, medmnist: str | None = None,
    medmnist_size: int = 28, axis: int = 2, skip_empty_slices: bool = False,
    size: int | None = None, keep_aspect: bool = False, channels: int | None = None,
    normalize: str = "auto", percentiles: Sequence[float] = (0.5, 99.5),
    window: str | Sequence[float] | None = None, filter: str | None = None,
    filter_sigma: float = 1.0, filter_size: int = 3, sigma_color: float = 0.1,
    sigma_space: float = 1.5, bit_depth: int = 8,
    split: str | Sequence[float] | None = None, seed: int = 0, resplit: bool = False,
    name: str | None = None, force: bool = False, skip_bad: bool = False,
    progress: bool | None = None, allow_missing_class: bool = False, nifti_rgb: bool = False,
) -> Path:
    """Import ``source`` (folder, image/DICOM/NIfTI file or .npz) as the prepared dataset ``out``.

    Every option is documented in docs/data.md; the returned path is ``out``. Raises
    :class:`DataError` with one actionable line for anything the user can fix.
    """
    out = check_output(out, force=force, kind="dataset", inputs={
        "source": source, "labels CSV": labels_csv, "mask folder": mask_dir})
    pre = Preprocessor(size=size, keep_aspect=keep_aspect, normalize=normalize,
                       percentiles=percentiles, window=window, filter=filter,
                       filter_sigma=filter_sigma, filter_size=filter_size,
                       sigma_color=sigma_color, sigma_space=sigma_space, bit_depth=bit_depth)
    fractions = parse_fractions(split) if split is not None else DEFAULT_FRACTIONS
    layout = None
    if source is not None and not medmnist and Path(source).is_dir():
        layout = recognise_layout(Path(source), labels_csv=labels_csv, mask_dir=mask_dir,
                                  mask_suffix=mask_suffix, no_labels=no_labels)
        source, labels_csv, mask_dir = layout.root, layout.labels_csv, layout.mask_dir
        if class_names is None and layout.class_names:
            class_names = layout.class_names
    class_map = parse_class_names(class_names)
    if channels is not None and channels not in (1, 3):
        raise DataError(f"--channels {channels}: choose 1 or 3")
    skipped: list[dict[str, str]] = []

    def on_bad(rel: str, message: str) -> None:
        if rel not in message:  # e.g. "not listed in labels.csv": say which file
            message = f"{rel}: {message}"
        log.warning("skipped %s", message)
        skipped.append({"file": rel, "reason": message})

    src = _open_source(source, medmnist=medmnist, medmnist_size=medmnist_size, npz_keys=npz_keys,
                       labels_csv=labels_csv, no_labels=no_labels, class_map=class_map,
                       mask_dir=mask_dir, mask_suffix=mask_suffix, group_regex=group_regex,
                       axis=axis, skip_empty_slices=skip_empty_slices, exclude=(out,),
                       on_bad=on_bad if skip_bad else None, nifti_rgb=nifti_rgb,
                       notices=layout.notices if layout is not None else ())
    check_memory(len(src), size, channels, bit_depth)
    if isinstance(src, NpzSource) and group_regex is not None:
        src = _RegexGroups(src, group_regex)
    cols = _collect(src, pre, {str(x) for x in drop_labels}, no_labels, progress)
    return _finish(out, src, cols, pre, class_map=class_map, channels=channels,
                   fractions=fractions, seed=seed, resplit=resplit, split_given=split is not None,
                   skipped=skipped, name=name, force=force, allow_missing_class=allow_missing_class)


def _finish(out, src, cols, pre, *, class_map, channels, fractions, seed, resplit, split_given,
            skipped, name, force, allow_missing_class=False) -> Path:
    """Map labels, stack, split and write; every notice also lands in dataset.json."""
    notices: list[str] = list(getattr(src, "notices", []))
    labels, names = resolve_labels(cols["labels"], class_map=class_map,
                                   file_names=getattr(src, "class_names", None), notices=notices)
    ids = _unique_ids(cols["names"], cols["sources"])
    groups = [g if g is not None else i for g, i in zip(cols["groups"], ids, strict=True)]
    images = _stack_channels(cols["images"], channels, notices)
    has_mask = [m is not None for m in cols["masks"]]
    masks = None
    if any(has_mask):
        shape = images.shape[2:]
        masks = np.stack([m if m is not None else np.zeros(shape, np.uint8) for m in cols["masks"]])
    splits, split_info = _assign_splits(cols, labels, groups, fractions=fractions, seed=seed,
                                        resplit=resplit, class_names=names, notices=notices,
                                        allow_missing_class=allow_missing_class)
    if split_given and split_info["method"].startswith("official"):
        notices.append("--split ignored: the source has official splits (pass --resplit)")
    split_info["groups"] = _group_desc(src, cols["groups"])
    if pre.masks_emptied:
        notices.append(f"{pre.masks_emptied} mask(s) became empty when resized to {pre.size}x"
                       f"{pre.size} (structures under a pixel); use a larger --size")
    info = dict(src.info)
    empty = getattr(src, "n_empty_skipped", 0)
    info.update(skipped={"count": len(skipped), "files": skipped[:100]},
                dropped_labels=cols["dropped"][0], empty_slices_skipped=empty, notices=notices)
    for note in notices:
        log.warning(note)
    return write_prepared(out, images=images, labels=labels, splits=splits, class_names=names,
                          ids=ids, groups=groups, sources=cols["sources"], masks=masks,
                          has_mask=has_mask, preprocessing=pre.describe(), source=info,
                          split_info=split_info, name=name, force=force)


_GROUP_WORDS = {"regex": "--group-regex", "csv": "CSV group column",
                "dicom PatientID": "DICOM PatientID",
                "file": "source file (the slices/frames of one file share a group)",
                "image": "each image its own group"}


def _group_desc(src, groups: list[str | None]) -> Any:
    """Where the split's groups came from: a sentence, or {source: image count} when mixed."""
    if isinstance(src, FolderSource):
        counts = {_GROUP_WORDS[k]: v for k, v in src.group_counts.items()}
        if src.regex is not None:
            counts = {f"--group-regex '{src.regex.pattern}'": len(groups)}
    elif all(g is None for g in groups):
        counts = {_GROUP_WORDS["image"]: len(groups)}
    else:
        counts = {getattr(src, "group_source", "npz groups array"): len(groups)}
    if list(counts) == [_GROUP_WORDS["image"]]:
        return DEFAULT_GROUPS
    return next(iter(counts)) if len(counts) == 1 else counts


class _RegexGroups:
    """Wrap an npz source so ``--group-regex`` groups its ids (e.g. ``--npz-key ids=names``)."""

    def __init__(self, src: NpzSource, pattern: str) -> None:
        self.src, self.rx = src, compile_group_regex(pattern)
        self.path, self.info, self.class_names = src.path, src.info, src.class_names
        self.group_source = f"--group-regex '{pattern}' on ids"

    def __len__(self) -> int:
        return len(self.src)

    def __iter__(self):
        rx = self.rx
        assert rx is not None
        for rec in self.src:
            m = rx.search(rec.name)
            if m is None:
                raise DataError(f"--group-regex {rx.pattern!r} does not match id {rec.name!r}; "
                                "fix the pattern (map ids with --npz-key ids=KEY)")
            rec.group = m.group(1) if rx.groups else m.group(0)
            yield rec
