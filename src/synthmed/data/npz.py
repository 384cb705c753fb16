"""NumPy ``.npz`` sources: MedMNIST files, synthetic sets, and generic arrays.

* MedMNIST layout (Yang et al., "MedMNIST v2", Sci. Data 2023): ``{train,val,test}_images`` and
  ``{train,val,test}_labels`` (N, 1); the official splits are kept. A file with only ``train_*``
  keys (what ``synthmed generate --format npz`` writes, plus ``class_names`` and ``seeds``) is all
  train.
* Generic: ``images`` plus optional ``labels``, ``masks``, ``groups``, ``ids``, ``class_names``;
  ``--npz-key labels=label_binary`` maps a role to another key so published files import as they
  are.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from synthmed.data.readers import Record
from synthmed.data.splits import SPLITS
from synthmed.errors import DataError

NPZ_ROLES = ("images", "labels", "masks", "groups", "ids", "class_names")
# Label names of MedMNIST v2 2D sets, used when the `medmnist` package is not installed.
MEDMNIST_LABELS = {
    "breastmnist": ["malignant", "normal, benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
}


def parse_npz_keys(items: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["labels=label_binary", "groups=case_id"]`` -> ``{"labels": "label_binary", ...}``."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else [
        tuple(x.split("=", 1)) if "=" in x else (x, None) for x in items]
    out = {}
    for role, key in pairs:
        role = str(role).strip()
        if key is None or not str(key).strip():
            raise DataError(f"--npz-key {role!r}: expected ROLE=KEY, e.g. labels=label_binary")
        if role not in NPZ_ROLES:
            raise DataError(f"--npz-key {role}={key}: unknown role {role!r}; choose one of "
                            f"{', '.join(NPZ_ROLES)}")
        out[role] = str(key).strip()
    return out


def fetch_medmnist(name: str, root: str | Path, *, size: int = 28) -> Path:
    """Download a MedMNIST file with the official ``medmnist`` package (only when asked for)."""
    try:
        import medmnist
    except ImportError:
        raise DataError(f"--medmnist {name}: the medmnist package is not installed; "
                        "pip install 'synthmed[medmnist]', or download the .npz and pass its "
                        "path as SOURCE") from None
    info = medmnist.INFO
    if name not in info:
        raise DataError(f"--medmnist {name}: unknown dataset; choose one of "
                        f"{', '.join(sorted(info))}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(medmnist, info[name]["python_class"])
    kwargs = {} if size == 28 else {"size": size}
    cls(split="train", download=True, root=str(root), **kwargs)
    path = root / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
    if not path.is_file():
        raise DataError(f"--medmnist {name}: download finished but {path} is missing")
    return path


def medmnist_label_names(stem: str) -> list[str] | None:
    """Official label names for a MedMNIST file named like ``breastmnist[_64].npz``."""
    flag = stem.lower().split("_")[0]
    try:
        import medmnist

        labels = medmnist.INFO.get(flag, {}).get("label")
        if labels:
            return [labels[k] for k in sorted(labels, key=int)]
    except ImportError:
        pass
    return MEDMNIST_LABELS.get(flag)


def _images(arr: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) -> (N, H, W) or (N, H, W, 3)."""
    if arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 4 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise DataError(f"{where}: images have shape {arr.shape}; expected (N, H, W) or "
                        "(N, H, W, 3) 2D images (3D volumes: save them as NIfTI)")
    if arr.dtype.kind not in "uifb":
        raise DataError(f"{where}: images have dtype {arr.dtype}; expected numbers")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{where}: images contain NaN or Inf values; replace them first")
    return arr


def _labels(arr: np.ndarray, n: int, where: str) -> list[str | None]:
    """Raw label text per image; '' and None mean unlabelled."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{where}: labels have shape {arr.shape} for {n} images; expected "
                        "one label per image (multi-label sets: pick one column)")
    if arr.dtype.kind in "iub":
        return [str(int(v)) for v in arr]
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{where}: float labels must be whole numbers")
        return [str(int(v)) for v in arr]
    return [str(v).strip() or None for v in arr]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of ``path``; one line for a file that is no zip (a text file named .npz was
    called "pickled data" by numpy) or a member that is not a .npy array (was an AttributeError).
    """
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz file (no zip archive inside); re-download it, or "
                        "save the arrays with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({' '.join(str(e).split())[:100]}); "
                        "re-download or re-save it") from None
    bad = sorted(k for k, v in data.items() if not isinstance(v, np.ndarray))
    if bad:
        raise DataError(f"{path}: member {bad[0]!r} is not a NumPy array (.npy); re-save the "
                        "file with numpy.savez")
    return data


class NpzSource:
    """Records from one ``.npz`` file; ``class_names`` holds names stored in the file, if any."""

    def __init__(self, path: str | Path, *, keys: Mapping[str, str] | None = None,
                 skip_empty: bool = False) -> None:
        self.path = Path(path)
        self.notices: list[str] = []
        self.n_empty_skipped = 0
        if not self.path.is_file():
            raise DataError(f"{self.path}: path does not exist")
        keys = dict(keys or {})
        data = _read_npz(self.path)
        self.class_names = None
        if "class_names" in data or "class_names" in keys:
            self.class_names = [str(x) for x in self._get(data, keys, "class_names")]
        medmnist = "train_images" in data and "images" not in keys
        if medmnist:
            self.kind = "synthetic" if "seeds" in data else "medmnist"
            self._parts = self._medmnist_parts(data)
            if self.class_names is None and self.kind == "medmnist":
                self.class_names = medmnist_label_names(self.path.stem)
        else:
            self.kind = "npz"
            self._parts = [self._generic_part(data, keys)]
        if skip_empty:
            self._skip_empty()
        self.n = sum(len(p["images"]) for p in self._parts)
        self.group_source = f"npz array {keys.get('groups', 'groups')!r}"
        self.info = {"type": self.kind, "path": str(self.path), "keys": sorted(data),
                     "key_mapping": keys, "labels": "npz" if self._has_labels() else "none",
                     "masks": "npz" if any("masks" in p for p in self._parts) else "none"}

    def _skip_empty(self) -> None:
        """``--skip-empty-slices``: drop records whose mask is empty (without masks: whose image
        is constant), e.g. DDTI's 7 empty nodule masks, and say how many in a notice."""
        dropped = 0
        for part in self._parts:
            flat = (part["masks"] if "masks" in part else part["images"]).reshape(
                len(part["images"]), -1)
            keep = flat.max(axis=1) > 0 if "masks" in part else flat.min(axis=1) < flat.max(axis=1)
            dropped += int((~keep).sum())
            for role in ("images", "masks", "labels"):
                if role in part:
                    part[role] = part[role][keep]
            for role in ("ids", "groups"):
                if role in part:
                    part[role] = [v for v, k in zip(part[role], keep, strict=True) if k]
        self.n_empty_skipped = dropped
        what = "an empty mask" if any("masks" in p for p in self._parts) else "a constant image"
        if dropped:
            self.notices.append(f"--skip-empty-slices: dropped {dropped} record(s) with {what}")

    def _has_labels(self) -> bool:
        return any("labels" in p for p in self._parts)

    def _get(self, data: dict, keys: Mapping[str, str], role: str) -> np.ndarray:
        key = keys.get(role, role)
        if key not in data:
            raise DataError(f"{self.path}: no array {key!r} (for {role}); keys are "
                            f"{', '.join(sorted(data))}; map one with --npz-key {role}=KEY")
        return data[key]

    def _medmnist_parts(self, data: dict) -> list[dict]:
        parts = []
        seeds = data.get("seeds")
        for split in SPLITS:
            if f"{split}_images" not in data:
                continue
            imgs = _images(data[f"{split}_images"], f"{self.path}: {split}_images")
            part = {"images": imgs, "split": split,
                    "ids": [f"{split}_{i:05d}" for i in range(len(imgs))]}
            if split == "train" and seeds is not None and len(seeds) == len(imgs):
                part["ids"] = [f"{i:06d}_seed{int(s)}" for i, s in enumerate(seeds)]
            if f"{split}_masks" in data:  # image+mask pairs from `generate --masks-from`
                part["masks"] = data[f"{split}_masks"]
            if f"{split}_labels" in data:
                part["labels"] = _labels(data[f"{split}_labels"], len(imgs),
                                         f"{self.path}: {split}_labels")
            parts.append(part)
        return parts

    def _generic_part(self, data: dict, keys: Mapping[str, str]) -> dict:
        imgs = _images(self._get(data, keys, "images"), f"{self.path}: images")
        n = len(imgs)
        part: dict = {"images": imgs, "split": None, "ids": [f"{i:06d}" for i in range(n)]}
        for role in ("labels", "masks", "groups", "ids"):
            if role not in keys and role not in data:
                continue
            arr = self._get(data, keys, role)
            if len(arr) != n:
                raise DataError(f"{self.path}: {keys.get(role, role)!r} has {len(arr)} entries "
                                f"for {n} images; use a {role} array with one entry per image")
            if role == "labels":
                part["labels"] = _labels(arr, n, f"{self.path}: {keys.get(role, role)}")
            elif role == "masks":
                masks = arr[..., 0] if arr.ndim == 4 and arr.shape[-1] == 1 else arr
                masks = masks[:, 0] if masks.ndim == 4 and masks.shape[1] == 1 else masks
                if masks.shape != imgs.shape[:3]:
                    raise DataError(f"{self.path}: masks have shape {arr.shape} but images "
                                    f"{imgs.shape}; each mask must match its image's size")
                part["masks"] = masks
            else:
                part[role] = [str(v) for v in arr]
        return part

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Record]:
        for part in self._parts:
            labels, masks, groups = part.get("labels"), part.get("masks"), part.get("groups")
            for i, img in enumerate(part["images"]):
                mask = (masks[i] > 0).astype(np.uint8) if masks is not None else None
                yield Record(img, name=part["ids"][i], source=f"{self.path.name}#{i}"
                             if part["split"] is None else f"{part['split']}#{i}",
                             label=labels[i] if labels is not None else None,
                             group=groups[i] if groups is not None else None,
                             mask=mask, split=part["split"])
