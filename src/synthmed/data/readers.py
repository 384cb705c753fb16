"""Read one source file into 2D frames: PNG/JPEG/BMP/TIFF/GIF (Pillow), DICOM (pydicom), NIfTI
(nibabel).

Every reader returns raw pixel values, not display values: 16-bit files stay uint16, DICOM frames
come back in modality units (RescaleSlope/Intercept applied, so CT is in HU), NIfTI slices as
float32. Intensity mapping to the output bit depth is :mod:`synthmed.data.preprocess`'s job, so
that ``--normalize window`` can work in HU. Problems with one file raise :class:`BadFileError`,
which ``--skip-bad`` turns into a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthmed.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
DICOM_EXTS = (".dcm", ".dicom")
NIFTI_EXTS = (".nii", ".nii.gz")
NPZ_EXTS = (".npz",)
SUPPORTED_EXTS = IMAGE_EXTS + DICOM_EXTS + NIFTI_EXTS
# Files that often sit beside images (exports, notes, metadata): ignored when scanning a folder.
SIDECAR_EXTS = (".csv", ".tsv", ".txt", ".json", ".md", ".xml", ".yaml", ".yml", ".log", ".html",
                ".pdf", ".ini", ".db", ".xlsx", ".xls")
SIDECAR_NAMES = ("DICOMDIR", "Thumbs.db", "LICENSE", "README")


class BadFileError(DataError):
    """One input file cannot be used (corrupt, unsupported, no pixels, NaN); --skip-bad skips it."""


@dataclass
class Record:
    """One 2D image on its way into a prepared dataset.

    ``image`` is (H, W) or (H, W, C) in raw units; ``label`` is the raw label text (a class folder,
    a CSV cell, ``str(int)`` of an npz label) or None; ``split`` is an official split if the source
    has one.
    """

    image: np.ndarray
    name: str
    source: str
    label: str | None = None
    group: str | None = None
    mask: np.ndarray | None = None
    split: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Frames:
    """What one file holds: its 2D frames and, for DICOM, the PatientID."""

    frames: list[np.ndarray]
    kind: str
    patient_id: str | None = None
    notes: list[str] = field(default_factory=list)  # what the reader decided (e.g. 4-D NIfTI)


def split_ext(name: str) -> tuple[str, str]:
    """('brain', '.nii.gz') for 'brain.nii.gz'; lower-cased extension."""
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return name[:-7], ".nii.gz"
    p = Path(name)
    return p.stem if p.suffix else name, p.suffix.lower()


def _is_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def file_kind(path: Path) -> str | None:
    """'image', 'dicom' or 'nifti'; None for sidecar files a folder scan ignores.

    Extension-less files are DICOM when they carry the 'DICM' preamble (PACS exports name files
    like IM000001); anything else unsupported is a :class:`BadFileError`.
    """
    name = path.name
    if name.startswith(".") or name in SIDECAR_NAMES:
        return None
    _, ext = split_ext(name)
    if ext in IMAGE_EXTS:
        return "image"
    if ext in DICOM_EXTS:
        return "dicom"
    if ext in NIFTI_EXTS:
        return "nifti"
    if ext in SIDECAR_EXTS:
        return None
    if ext == "" and _is_dicom_magic(path):
        return "dicom"
    raise BadFileError(
        f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: "
        f"{', '.join(SUPPORTED_EXTS)} (convert it, remove it, or pass --skip-bad)"
    )


def read_frames(path: str | Path, *, axis: int = 2, rgb: bool = False) -> Frames:
    """All 2D frames of one file (multi-page TIFF, multi-frame DICOM, NIfTI slices on ``axis``).

    ``rgb``: a 4-D NIfTI whose last axis is 3 holds colour (``--nifti-rgb``); otherwise its
    volumes are sliced one after another.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    kind = file_kind(path)
    if kind == "dicom":
        return _read_dicom(path)
    if kind == "nifti":
        return _read_nifti(path, axis, rgb)
    if kind == "image":
        return Frames(_read_pil(path), "image")
    raise BadFileError(f"{path}: not an image file (supported: {', '.join(SUPPORTED_EXTS)})")


def _pil_to_array(im) -> np.ndarray:
    """Pillow image -> (H, W) or (H, W, 3) array without losing bit depth."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.uint8) * np.uint8(255)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16)
        return arr
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode in ("L", "RGB"):
        return np.asarray(im)
    if mode == "LA":
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # P, RGBA, CMYK, YCbCr, ...


def _read_pil(path: Path) -> list[np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            frames = []
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                frames.append(_collapse_gray(_pil_to_array(im)))
    except Image.DecompressionBombError as e:  # was called "corrupt or truncated"
        raise BadFileError(f"{path}: image is larger than Pillow's safety limit of "
                           f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels ({_short(e)}), a possible "
                           "decompression bomb; check the file, or pass --skip-bad") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadFileError(f"{path}: cannot read image ({_short(e)}); the file is corrupt or "
                           "truncated: re-export it or pass --skip-bad") from None
    return frames


def _collapse_gray(arr: np.ndarray) -> np.ndarray:
    """RGB with three identical channels (common for exported grayscale scans) -> (H, W)."""
    if arr.ndim == 3 and arr.shape[2] == 3 and (arr[..., 0] == arr[..., 1]).all() \
            and (arr[..., 1] == arr[..., 2]).all():
        return np.ascontiguousarray(arr[..., 0])
    return arr


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:120] or type(e).__name__


def _read_dicom(path: Path) -> Frames:
    """DICOM -> frames in modality units; MONOCHROME1 is inverted so bright means dense."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as e:
        raise BadFileError(f"{path}: not a readable DICOM file ({_short(e)}); "
                           "re-export it or pass --skip-bad") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise BadFileError(f"{path}: DICOM file has no pixel data (a report, SR or DICOMDIR?); "
                           "remove it from the folder or pass --skip-bad")
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for undecodable pixels
        tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise BadFileError(f"{path}: cannot decode DICOM pixel data (transfer syntax {tsyntax}: "
                           f"{_short(e)}); install pylibjpeg/gdcm plugins or pass --skip-bad"
                           ) from None
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        arr = arr[None]
    if samples == 1:
        if "RescaleSlope" in ds or "RescaleIntercept" in ds or "ModalityLUTSequence" in ds:
            arr = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
            arr = np.asarray(arr, dtype=np.float32)
            arr = arr.max() + arr.min() - arr
    frames = [np.ascontiguousarray(f) for f in arr]
    patient = str(getattr(ds, "PatientID", "") or "").strip() or None
    return Frames(frames, "dicom", patient)


def _read_nifti(path: Path, axis: int, rgb: bool = False) -> Frames:
    """NIfTI volume -> slices along ``axis``, rotated so the first voxel axis runs left-right.

    Integer volumes keep their dtype (so 8-bit data is not re-normalized); scaled ones are float.
    A 4-D file (X, Y, Z, T) is T volumes (time points, echoes, modalities): each is sliced in
    turn, volume by volume, and a note says so. A last axis of 3 is only read as RGB colour with
    ``rgb`` (``--nifti-rgb``), because three echoes or modalities have that shape too.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        vol = np.asanyarray(img.dataobj)  # native dtype unless the header scales the data
    except Exception as e:  # noqa: BLE001 - nibabel/gzip/zlib raise many types on bad files
        raise BadFileError(f"{path}: cannot read NIfTI ({_short(e)}); the file is corrupt or "
                           "truncated: re-export it or pass --skip-bad") from None
    if vol.dtype.kind not in "uifb":
        raise BadFileError(f"{path}: NIfTI data type {vol.dtype} is not a plain number type")
    if vol.dtype.kind == "f" and not np.isfinite(vol).all():
        raise BadFileError(f"{path}: NIfTI volume contains NaN or Inf values; replace them "
                           "(e.g. with 0) before importing, or pass --skip-bad")
    if vol.ndim == 5 and vol.shape[3] == 1:  # NIfTI vector data: (X, Y, Z, 1, C)
        vol = vol[:, :, :, 0]
    if vol.ndim == 4 and vol.shape[3] == 1:
        vol = vol[..., 0]
    if vol.ndim == 2:
        vol = vol[..., None]
    if vol.ndim not in (3, 4):
        raise BadFileError(f"{path}: NIfTI has shape {vol.shape}; only 2D, 3D or 4D volumes "
                           "can be sliced into images")
    if not 0 <= axis <= 2:
        raise DataError(f"--axis {axis}: must be 0, 1 or 2")
    notes: list[str] = []
    if vol.ndim == 4 and rgb and vol.shape[3] == 3:
        volumes = [vol]
    elif vol.ndim == 4:
        volumes = [vol[..., t] for t in range(vol.shape[3])]
        hint = " (pass --nifti-rgb if it is colour)" if vol.shape[3] == 3 else ""
        notes.append(f"{path.name}: 4-D NIfTI {tuple(vol.shape)} read as {vol.shape[3]} volumes "
                     f"sliced one after another{hint}")
    else:
        volumes = [vol]
    frames = [np.ascontiguousarray(nifti_slice_to_image(np.take(v, k, axis=axis)))
              for v in volumes for k in range(v.shape[axis])]
    return Frames(frames, "nifti", notes=notes)


def nifti_slice_to_image(sl: np.ndarray) -> np.ndarray:
    """Voxel-order slice (X, Y[, 3]) -> image rows/cols (rot90: what viewers show for RAS data)."""
    return np.rot90(sl, 1, axes=(0, 1))


def image_to_nifti_slice(img: np.ndarray) -> np.ndarray:
    """Inverse of :func:`nifti_slice_to_image`, used by the NIfTI export."""
    return np.rot90(img, -1, axes=(0, 1))


def read_mask_frames(path: Path, *, shapes: list[tuple[int, ...]], image: str,
                     axis: int = 2, rgb: bool = False) -> list[np.ndarray]:
    """The mask frames paired with an image file: binarized (>0 -> 1), checked against it.

    ``shapes`` are the image frames' shapes; RGB masks count a pixel as foreground when any
    channel is non-zero.
    """
    frames = read_frames(path, axis=axis, rgb=rgb).frames
    if len(frames) != len(shapes):
        raise BadFileError(f"{path}: mask has {len(frames)} frame(s) but image {image} has "
                           f"{len(shapes)}; pair each image with a mask of the same size")
    out = []
    for f, shape in zip(frames, shapes, strict=True):
        m = f.max(axis=2) if f.ndim == 3 else f
        if m.shape != tuple(shape[:2]):
            raise BadFileError(f"{path}: mask is {m.shape[0]}x{m.shape[1]} but image {image} is "
                               f"{shape[0]}x{shape[1]}; masks must match their image's size")
        out.append((m > 0).astype(np.uint8))
    return out
