"""Recognise folder layouts that synthmed itself writes, so importing them does the right thing.

Two layouts were silently mis-imported before: a ``synthmed data export`` folder
(``images/<split>/<class>/``, ``masks/``, ``manifest.csv``, ``export.json``), whose split folders
became three classes, and the raw phantom (``images/<class>/``, ``masks/<class>/``,
``labels.csv``), whose masks became more training images. Here both are recognised from their
marker files and imported as the matching explicit command would (with a notice saying so), and
anything ambiguous is refused with the command to run instead. Explicit options always win.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from synthmed.data.readers import file_kind
from synthmed.errors import DataError


@dataclass
class Layout:
    """What to import: the image root, labels CSV, mask folder and class order to use."""

    root: Path
    labels_csv: Path | None = None
    mask_dir: Path | None = None
    class_names: list[str] | None = None
    notices: list[str] = field(default_factory=list)


def recognise_layout(root: Path, *, labels_csv, mask_dir, mask_suffix, no_labels: bool
                     ) -> Layout:
    """The layout to import ``root`` as; unchanged unless ``root`` is one synthmed wrote."""
    plain = Layout(Path(root), labels_csv, mask_dir)
    root = Path(root)
    if not root.is_dir() or labels_csv is not None or mask_dir is not None or mask_suffix:
        return plain
    if (root / "export.json").is_file():
        return _export_layout(root, root, no_labels)
    if root.name == "images" and (root.parent / "export.json").is_file():
        return _export_layout(root.parent, root, no_labels)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return _images_masks_layout(root, no_labels)
    return plain


def _export_layout(top: Path, given: Path, no_labels: bool) -> Layout:
    try:
        meta = json.loads((top / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{top / 'export.json'}: unreadable ({type(e).__name__}); fix or remove "
                        "it, or pass --labels-csv to import the images as you choose") from None
    fmt = meta.get("format") if isinstance(meta, dict) else None
    images, manifest = top / "images", top / "manifest.csv"
    if fmt == "nifti":
        vol = next(iter(sorted(top.glob("*.nii.gz"))), top / "train.nii.gz")
        raise DataError(f"{given}: a synthmed NIfTI export; import one volume with its masks "
                        f"(synthmed data import {vol} --mask-suffix _mask), or export as png to "
                        "re-import with labels, groups and splits")
    if fmt not in ("png", "dicom") or not images.is_dir() or not manifest.is_file():
        raise DataError(f"{given}: has export.json but not the synthmed export layout "
                        "(images/, manifest.csv); pass --labels-csv to import it as you choose")
    layout = Layout(images, None if no_labels else manifest,
                    top / "masks" if (top / "masks").is_dir() else None)
    names = meta.get("class_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        layout.class_names = names
    layout.notices.append(
        f"{given}: recognised a synthmed {fmt} export: importing {images} with {manifest} "
        f"(classes, groups and splits kept)" + (f" and masks from {layout.mask_dir}"
                                               if layout.mask_dir else ""))
    return layout


def _images_masks_layout(root: Path, no_labels: bool) -> Layout:
    """``images/`` beside ``masks/`` (the phantom, many public sets): masks are never images."""
    images, masks, csv_path = root / "images", root / "masks", root / "labels.csv"
    others = [p.name for p in root.iterdir() if not p.name.startswith(".")
              and p.name not in ("images", "masks") and (p.is_dir() or _is_image(p))]
    use_csv = not no_labels and csv_path.is_file() and _csv_paths_under(csv_path, images)
    command = (f"synthmed data import {images} --mask-dir {masks}"
               + (f" --labels-csv {csv_path}" if use_csv else ""))
    if others or (csv_path.is_file() and not no_labels and not use_csv):
        why = (f"it also holds {', '.join(sorted(others)[:3])}" if others else
               f"{csv_path.name}'s paths are not relative to images/")
        raise DataError(f"{root}: has images/ and masks/ folders but {why}; say what to import, "
                        f"e.g. {command}")
    layout = Layout(images, csv_path if use_csv else None, masks)
    layout.notices.append(f"{root}: found images/ with masks/ beside it"
                          + (f" and {csv_path.name}" if use_csv else "")
                          + f"; importing as: {command}")
    return layout


def _is_image(path: Path) -> bool:
    try:
        return path.is_file() and file_kind(path) is not None
    except DataError:
        return False


def _csv_paths_under(csv_path: Path, images: Path) -> bool:
    """Whether the first row of a labels CSV names a file under ``images``."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip().lower() for c in reader.fieldnames or []]
            first = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if "path" not in fields or first is None:
        return False
    rel = dict(zip(fields, first.values(), strict=False)).get("path") or ""
    return bool(rel.strip()) and (images / rel.strip()).is_file()
