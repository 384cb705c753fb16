"""A folder (or one file) of images as a stream of records with labels, masks and groups.

Labels come from class subfolders (the default), a CSV (``path,label[,group][,split]``, paths
relative to SOURCE) or nowhere (``--no-labels``). Masks come from a parallel folder with the same
relative paths (``--mask-dir``) or from siblings named ``<stem><suffix>.<ext>`` (``--mask-suffix``).
Groups, the unit a patient-exclusive split keeps together, come from ``--group-regex``, the CSV,
the DICOM PatientID, the file (all slices of one volume), or else the image itself.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synthmed.data.readers import (
    BadFileError,
    Record,
    file_kind,
    read_frames,
    read_mask_frames,
    split_ext,
)
from synthmed.data.splits import SPLITS
from synthmed.errors import DataError

OnBad = Callable[[str, str], None]


def natural_key(text: str) -> list:
    """Sort 'img2' before 'img10', the way a person numbers files."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


@dataclass
class CsvRow:
    label: str | None
    group: str | None
    split: str | None
    line: int


def read_labels_csv(path: str | Path, *, known: set[str] | None = None) -> dict[str, CsvRow]:
    """Read ``path,label[,group][,split]`` rows keyed by the POSIX relative path.

    ``known`` (from ``--class-names``) turns a misspelt label into an error naming its line, instead
    of a silently created extra class.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--labels-csv {path}: file does not exist")
    with io.StringIO(_decode_csv(path), newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in fields or not {"label", "group", "split"} & set(fields):
            raise DataError(f"{path}: needs a header row with columns path,label[,group][,split]; "
                            f"found {','.join(fields) or 'nothing'}")
        reader.fieldnames = fields
        rows: dict[str, CsvRow] = {}
        for line, row in enumerate(reader, start=2):
            rel = _norm_rel(row.get("path") or "")
            if not rel:
                raise DataError(f"{path} line {line}: empty path")
            if rel in rows:
                raise DataError(f"{path} line {line}: {rel!r} is listed twice "
                                f"(first on line {rows[rel].line}); keep one row per image")
            label = (row.get("label") or "").strip() or None
            if known is not None and label is not None and label not in known:
                raise DataError(f"{path} line {line}: unknown label {label!r}; known: "
                                f"{', '.join(sorted(known))} (fix the CSV or --class-names)")
            split = (row.get("split") or "").strip().lower() or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{path} line {line}: split {split!r} must be train, val or test")
            rows[rel] = CsvRow(label, (row.get("group") or "").strip() or None, split, line)
    return rows


def _decode_csv(path: Path) -> str:
    """The CSV's text as UTF-8 (a BOM is allowed); anything else is one line naming the file.

    Guessing an encoding would silently turn 'é' into two characters in class names and paths, so
    a file that is not UTF-8 is refused with what it looks like and how to fix it.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if b"\0" in data[:4096]:
            kind = "binary data or UTF-16, not a text CSV"
        else:
            kind = "probably Latin-1/Windows-1252"
        raise DataError(f"--labels-csv {path}: not UTF-8 (byte 0x{data[e.start]:02x} at offset "
                        f"{e.start}; {kind}); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                        ) from None


def _norm_rel(text: str) -> str:
    rel = text.strip().replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def scan_files(root: Path, *, exclude: tuple[Path, ...] = (), on_bad: OnBad | None = None,
               skipped: list[str] | None = None) -> list[Path]:
    """Supported files under ``root`` in natural order; hidden and sidecar files are ignored."""
    out = []
    candidates = walk_files(root, skipped)
    for p in sorted(candidates, key=lambda q: natural_key(q.relative_to(root).as_posix())):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or any(_inside(p, e) for e in exclude):
            continue
        try:
            if file_kind(p) is not None:
                out.append(p)
        except BadFileError as e:
            if on_bad is None:
                raise
            on_bad(rel.as_posix(), str(e))
    return out


def walk_files(root: Path, skipped: list[str] | None = None) -> list[Path]:
    """Every file under ``root``, following symlinked folders (a class folder is often a link
    to shared storage) but never into a folder already visited, so a link loop ends the walk.

    Folders not entered (a loop, a second link to one folder) and broken links are appended to
    ``skipped`` as ``path (why)``, so no image disappears without a word.
    """
    seen: set[str] = {os.path.realpath(root)}
    out: list[Path] = []
    for top, dirs, files in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(top, d))
            if real in seen:
                if skipped is not None and not d.startswith("."):
                    skipped.append(f"{Path(top, d).relative_to(root).as_posix()} (a link to a "
                                   "folder already read)")
                continue
            seen.add(real)
            keep.append(d)
        dirs[:] = keep
        for f in files:
            p = Path(top) / f
            if p.is_file():
                out.append(p)
            elif skipped is not None and not f.startswith("."):
                skipped.append(f"{p.relative_to(root).as_posix()} (broken link)")
    return out


class FolderSource:
    """Records from the image/DICOM/NIfTI files under ``root`` (or the single file ``root``)."""

    def __init__(self, root: str | Path, *, labels_csv: str | Path | None = None,
                 no_labels: bool = False, known_labels: set[str] | None = None,
                 mask_dir: str | Path | None = None, mask_suffix: str | None = None,
                 group_regex: str | None = None, axis: int = 2, skip_empty_slices: bool = False,
                 exclude: tuple[Path, ...] = (), on_bad: OnBad | None = None,
                 nifti_rgb: bool = False) -> None:
        root = Path(root)
        self.notices: list[str] = []
        self.nifti_rgb = nifti_rgb
        if not root.exists():
            raise DataError(f"{root}: path does not exist")
        if mask_dir is not None and mask_suffix is not None:
            raise DataError("--mask-dir and --mask-suffix: choose one way to find masks")
        self.axis, self.skip_empty, self.on_bad = axis, skip_empty_slices, on_bad
        self.no_labels = no_labels
        self.regex = compile_group_regex(group_regex)
        self.bad: set[str] = set()
        if root.is_file():
            file_kind(root)
            stem = split_ext(root.name)[0]
            siblings = [p for p in sorted(root.parent.iterdir()) if mask_suffix and p.is_file()
                        and split_ext(p.name)[0] == stem + mask_suffix]
            self.root, files = root.parent, [root, *siblings]
        else:
            excl = exclude + ((Path(mask_dir),) if mask_dir is not None else ())
            links: list[str] = []
            self.root, files = root, scan_files(root, exclude=excl, on_bad=self._bad,
                                                skipped=links)
            if links:
                self.notices.append(f"{root}: skipped {len(links)} path(s): "
                                    + "; ".join(links[:10]) + (" ..." if len(links) > 10 else ""))
        self.files, self.masks = _pair_masks(self.root, files, mask_dir, mask_suffix)
        if not self.files:
            raise DataError(f"{root}: no images found (looked for PNG, JPEG, BMP, TIFF, DICOM and "
                            "NIfTI files); check the path")
        self.csv = read_labels_csv(labels_csv, known=known_labels) if labels_csv else None
        self.label_source = self._label_source()
        self._check_csv_coverage(labels_csv)
        self.group_counts: Counter = Counter()
        self.n_empty_skipped = 0
        self.info = {"type": "folder", "path": str(root), "n_files": len(self.files),
                     "labels": self.label_source,
                     "masks": _mask_desc(mask_dir, mask_suffix, len(self.masks), len(self.files))}

    def _bad(self, rel: str, message: str) -> None:
        self.bad.add(rel)
        if self.on_bad is None:
            raise BadFileError(message)
        self.on_bad(rel, message)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _label_source(self) -> str:
        if self.no_labels:
            return "none (--no-labels)"
        if self.csv is not None:
            return "csv"
        depths = {len(Path(self._rel(p)).parts) > 1 for p in self.files}
        if depths == {True, False}:
            raise DataError(f"{self.root}: some images sit directly in the folder and some in "
                            "subfolders; put every image in a class folder, or pass "
                            "--labels-csv or --no-labels")
        if depths == {True}:
            tops = sorted({self._rel(p).split("/")[0] for p in self.files} & set(SPLITS))
            if tops:
                self.notices.append(
                    f"{self.root}: class folder(s) named {', '.join(tops)} look like split "
                    "folders, not classes; for a synthmed export import the folder holding "
                    "export.json, else pass --labels-csv")
            return "class folders"
        return "none (no class subfolders)"

    def _check_csv_coverage(self, labels_csv) -> None:
        if self.csv is None:
            return
        present = {self._rel(p) for p in self.files}
        for rel, row in self.csv.items():
            if rel not in present and rel not in self.bad:
                raise DataError(f"{labels_csv} line {row.line}: {rel!r} not found under "
                                f"{self.root}; paths are relative to SOURCE")
        missing = [p for p in self.files if self._rel(p) not in self.csv]
        if missing:
            if self.on_bad is None:
                raise DataError(f"{self._rel(missing[0])}: not listed in {labels_csv} "
                                f"({len(missing)} image(s) unlisted); add rows or pass --skip-bad")
            for p in missing:
                self.on_bad(self._rel(p), f"not listed in {labels_csv}")
            self.files = [p for p in self.files if self._rel(p) in self.csv]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Record]:
        for path in self.files:
            rel = self._rel(path)
            try:
                frames = read_frames(path, axis=self.axis, rgb=self.nifti_rgb)
                masks = None
                if path in self.masks:
                    masks = read_mask_frames(self.masks[path], shapes=[f.shape for f in
                                             frames.frames], image=rel, axis=self.axis,
                                             rgb=self.nifti_rgb)
            except BadFileError as e:
                self._bad(rel, str(e))
                continue
            self.notices.extend(frames.notes)
            yield from self._records(path, rel, frames, masks)

    def _records(self, path: Path, rel: str, frames, masks) -> Iterator[Record]:
        stem = split_ext(path.name)[0]
        label, group, split, how = self._label_group(rel, stem, frames.patient_id)
        multi = len(frames.frames) > 1
        letter = "z" if frames.kind == "nifti" else "f"
        for k, img in enumerate(frames.frames):
            mask = masks[k] if masks is not None else None
            if self.skip_empty and (not mask.any() if mask is not None else img.min() == img.max()):
                self.n_empty_skipped += 1
                continue
            g, h = (group, how) if group is not None or not multi else (rel, "file")
            self.group_counts[h] += 1
            suffix = f"_{letter}{k:03d}" if multi else ""
            yield Record(img, name=stem + suffix, source=rel + (f"#{k}" if multi else ""),
                         label=label, group=g, mask=mask, split=split)

    def _label_group(self, rel: str, stem: str, patient: str | None):
        """(label, group, official split, how the group was found) for one file."""
        row = self.csv.get(rel) if self.csv is not None else None
        label = None
        if not self.no_labels:
            label = row.label if row is not None else (
                rel.split("/")[0] if self.label_source == "class folders" else None)
        if self.regex is not None:
            m = self.regex.search(stem) or self.regex.search(rel)
            if m is None:
                raise DataError(f"--group-regex {self.regex.pattern!r} does not match {rel!r} "
                                f"(stem {stem!r}); fix the pattern so every file matches")
            return label, (m.group(1) if self.regex.groups else m.group(0)), _split(row), "regex"
        if row is not None and row.group is not None:
            return label, row.group, row.split, "csv"
        if patient is not None:
            return label, patient, _split(row), "dicom PatientID"
        return label, None, _split(row), "image"


def _split(row: CsvRow | None) -> str | None:
    return row.split if row is not None else None


def compile_group_regex(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise DataError(f"--group-regex {pattern!r}: invalid regular expression ({e})") from None


def _pair_masks(root: Path, files: list[Path], mask_dir, mask_suffix
                ) -> tuple[list[Path], dict[Path, Path]]:
    """Split ``files`` into images and a {image: mask} map."""
    if mask_suffix is not None:
        if not mask_suffix:
            raise DataError("--mask-suffix: must not be empty (e.g. _mask)")
        by_stem = {}
        images = []
        for p in files:
            stem = split_ext(p.name)[0]
            if stem.endswith(mask_suffix) and stem != mask_suffix:
                by_stem.setdefault((p.parent, stem[: -len(mask_suffix)]), p)
            else:
                images.append(p)
        pairs = {p: by_stem[(p.parent, split_ext(p.name)[0])] for p in images
                 if (p.parent, split_ext(p.name)[0]) in by_stem}
        return images, pairs
    if mask_dir is None:
        return files, {}
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise DataError(f"--mask-dir {mask_dir}: folder does not exist")
    index = {}
    for m in scan_files(mask_dir):
        rel = m.relative_to(mask_dir)
        index.setdefault((rel.parent.as_posix(), split_ext(m.name)[0]), m)
    pairs = {}
    for p in files:
        rel = p.relative_to(root)
        key = (rel.parent.as_posix(), split_ext(p.name)[0])
        if key in index:
            pairs[p] = index[key]
    if files and not pairs:
        raise DataError(f"--mask-dir {mask_dir}: no mask matches an image; masks need the image's "
                        "relative path (any supported extension), e.g. benign/a.png")
    return files, pairs


def _mask_desc(mask_dir, mask_suffix, n_masks: int, n_files: int) -> str:
    if mask_dir is not None:
        return f"--mask-dir {mask_dir} ({n_masks} of {n_files} files)"
    if mask_suffix is not None:
        return f"--mask-suffix {mask_suffix} ({n_masks} of {n_files} files)"
    return "none"
