"""Where synthmed may write and what ``--force`` may delete.

Two rules (docs/reliability.md):

- Every file name built from data (class names, ids, names read from manifests) goes through
  :func:`safe_component`, and every output path is checked by :func:`ensure_inside` to resolve
  inside the output folder; a read from a manifest goes through :func:`member_path`.
- ``--force`` replaces only an empty folder or one the same command wrote (its marker file,
  e.g. ``dataset.json``, and nothing else at the top level), never a folder that is, contains or
  lies inside an input of the command (:func:`check_output`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from synthmed.errors import DataError

_UNSAFE = re.compile(r"[^\w.\-]+")  # separators, NUL, control characters, spaces, ':' ...
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
MAX_NAME_BYTES = 100  # well under the 255-byte limit of ext4/APFS/NTFS, with room for suffixes


def safe_component(text: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One file/folder name made from ``text`` that cannot leave its folder on any OS.

    Letters and digits of any script are kept (NFC); everything else (``/``, ``\\``, NUL, ``..``
    as a whole, control characters, spaces) becomes ``_``; leading dots/dashes are dropped (no
    hidden files, no option-like names); too-long names are cut and given a hash of the original.
    """
    s = _UNSAFE.sub("_", unicodedata.normalize("NFC", str(text))).lstrip(".-_").rstrip(".")
    s = s or "_"
    if s.split(".")[0].upper() in _WINDOWS_RESERVED:
        s += "_"
    if len(s.encode("utf-8")) > max_bytes:
        digest = hashlib.sha1(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cut = s.encode("utf-8")[:max_bytes - 9].decode("utf-8", "ignore")
        s = f"{cut}-{digest}"
    return s


def unique_components(names: Iterable[str]) -> list[str]:
    """:func:`safe_component` of each name, made unique ignoring case (macOS and Windows file
    systems fold case) by ``-2``, ``-3``... suffixes, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = safe_component(name)
        s, k = base, 1
        while s.casefold() in seen:
            k += 1
            s = f"{base}-{k}"
        seen.add(s.casefold())
        out.append(s)
    return out


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when ``path`` resolves (symlinks followed) to ``root`` or below it."""
    r, p = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([r, p]) == r


def ensure_inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, after checking that writing it cannot land outside ``root``."""
    if not is_inside(root, path):
        raise DataError(f"{path}: refusing to write outside the output folder {root}; "
                            "rename the class or id that produced this name")
    return Path(path)


def member_path(root: str | os.PathLike, rel: str, where: str) -> Path:
    """The file ``rel`` listed by a manifest of folder ``root``: relative, no ``..``, inside."""
    rel = str(rel)
    if not rel:
        raise DataError(f"{where}: no file named; a manifest row needs its file column")
    parts = set(PurePosixPath(rel).parts) | set(PureWindowsPath(rel).parts)
    if ("\0" in rel or PurePosixPath(rel).is_absolute()
            or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive or ".." in parts
            or not is_inside(root, Path(root) / rel)):
        raise DataError(f"{where}: file {rel[:200]!r} points outside {root}; a manifest may only "
                        "list files inside its own folder (regenerate the set)")
    return Path(root) / rel


@dataclass(frozen=True)
class OutputKind:
    """What one command writes: its marker file and every top-level name it may create."""

    kind: str
    command: str
    what: str
    marker: str
    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    allow_empty: bool = False  # an existing empty folder is fine without --force

    def owns(self, name: str) -> bool:
        return name in self.names or (bool(self.suffixes) and name.endswith(self.suffixes))


KINDS: dict[str, OutputKind] = {k.kind: k for k in (
    OutputKind("dataset", "data import", "a prepared dataset", "dataset.json",
               frozenset({"dataset.json", "images.npy", "labels.npy", "masks.npy",
                          "manifest.csv"})),
    OutputKind("synthetic", "generate", "a synthetic set", "generation.json",
               frozenset({"generation.json", "manifest.csv", "images", "dicom",
                          "synthetic.npz", "masks"}), allow_empty=True),  # masks: pair sets
    OutputKind("export", "data export", "an exported dataset", "export.json",
               frozenset({"export.json", "manifest.csv", "images", "masks"}), (".nii.gz",)),
    OutputKind("phantom", "data phantom", "a raw phantom folder", "phantom.json",
               frozenset({"phantom.json", "images", "masks", "labels.csv", "README.txt"})),
)}
_MARKERS = {k.marker: k for k in KINDS.values()}


def _is_marker(path: Path, kind: OutputKind) -> bool:
    """A marker synthmed wrote: JSON with ``synthmed_version`` (or the phantom's README)."""
    try:
        if path.name == "README.txt":
            return path.read_text(encoding="utf-8", errors="replace").startswith(
                "synthmed phantom")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "synthmed_version" in meta


def _refuse_unless_ours(out: Path, kind: OutputKind) -> None:
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    hint = (f"--force replaces only {kind.what} written by `synthmed {kind.command}` or an "
            "empty folder; choose another --out or move it away yourself")
    for name in names:
        other = _MARKERS.get(name)
        if other is not None and other is not kind and _is_marker(out / name, other):
            raise DataError(f"{out / name}: {out} holds {other.what} (written by `synthmed "
                                f"{other.command}`), not {kind.what}; {hint}")
    for name in names:
        if not kind.owns(name):
            raise DataError(f"{out / name}: not written by `synthmed {kind.command}`, so "
                                f"{out} is not {kind.what}; {hint}")
    markers = [out / kind.marker] + ([out / "README.txt"] if kind.kind == "phantom" else [])
    if not any(_is_marker(m, kind) for m in markers):
        raise DataError(f"{out / kind.marker}: missing or not written by synthmed, so {out} "
                            f"is not {kind.what}; {hint}")


def _overlap(out: Path, inputs: Mapping[str, str | os.PathLike | None], force: bool) -> None:
    """Refuse an output that is or contains an input; with ``force`` also one inside an input."""
    for label, src in inputs.items():
        if src is None or not os.path.exists(src):
            continue
        if os.path.realpath(src) == os.path.realpath(out):
            raise DataError(f"{out}: is the {label} this command reads; choose another --out")
        if is_inside(out, src):
            raise DataError(f"{out}: contains the {label} {src} this command reads; choose an "
                                "--out that holds no input")
        if force and is_inside(src, out):
            raise DataError(f"{out}: lies inside the {label} {src} this command reads; "
                                "--force never replaces folders inside its inputs; choose an "
                                "--out outside it")


def check_output(out: str | os.PathLike, *, force: bool, kind: str,
                 inputs: Mapping[str, str | os.PathLike | None] | None = None) -> Path:
    """Decide, before any work, whether ``out`` may be written (and replaced with ``force``).

    Raises a one-line :class:`SynthmedError` naming the file that proves ``out`` is not this
    command's output, or the input it overlaps. ``inputs`` maps a label ("source folder") to a
    path the command reads.
    """
    out, k = Path(out), KINDS[kind]
    _overlap(out, inputs or {}, force)
    if not (out.exists() or out.is_symlink()):
        return out
    if not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    empty = not any(out.iterdir())
    if not force:
        if empty and k.allow_empty:
            return out
        if k.allow_empty:
            raise DataError(f"{out}: output directory is not empty; pass --force to replace it")
        raise DataError(f"{out}: output directory already exists; pass --force to replace it")
    if out.is_symlink():
        raise DataError(f"{out}: is a symbolic link; pass the folder it points to as --out")
    _refuse_unless_ours(out, k)
    return out
