"""``synthmed data export``: a prepared dataset back to PNG, DICOM or NIfTI files.

PNG and DICOM use ``images/<split>/<class>/<id>.<ext>`` and ``masks/...`` with the same relative
paths, plus ``manifest.csv`` (path,label,group,split,id,mask; paths relative to ``images/``), so
``synthmed data import OUT/images --labels-csv OUT/manifest.csv --mask-dir OUT/masks`` restores
the same labels, groups and splits. DICOM files are Secondary Capture objects with fresh UIDs and
no patient identity. NIfTI writes one volume per split (images stacked along axis 2) and a mask
volume. The output directory is built beside its final place and renamed in at the end.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from pathlib import Path

import numpy as np

from synthmed import __version__
from synthmed.data.dataset import PreparedDataset
from synthmed.data.readers import image_to_nifti_slice
from synthmed.data.splits import SPLITS
from synthmed.errors import DataError
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output, ensure_inside, safe_component, unique_components

EXPORT_FORMATS = ("png", "dicom", "nifti")
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ANONYMOUS_NAME = "ANONYMOUS"
ANONYMOUS_ID = "SYNTHMED"


def safe_name(text: str) -> str:
    """A class name or id usable as a file/folder name on every OS (no separators, no ``..``)."""
    return safe_component(text)


def _hw(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, 3)."""
    return image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0))


def _rows(ds: PreparedDataset, idx: np.ndarray, ext: str):
    """(row, relative path, manifest row) per exported image. Class names and ids become folder
    and file names: made safe, and kept distinct (ignoring case) when two map to one name."""
    taken: set[str] = set()
    # one folder per class, in class order, with generate's rule: `x y`, `x_y` and `X_Y` were
    # merged into one x_y folder; now x_y, x_y-2, x_y-3 (the manifest keeps the real names)
    names = list(ds.class_names)
    names += sorted({r["label"] for r in ds.manifest if r["label"]} - set(names))
    folder = dict(zip([*names, ""], unique_components([*names, "unlabelled"]), strict=True))
    for i in idx:
        r = ds.manifest[i]
        split = r["split"] if r["split"] in SPLITS else safe_name(r["split"])
        cls = folder[r["label"] or ""]
        stem, k = safe_name(r["id"]), 1
        rel = f"{split}/{cls}/{stem}.{ext}"
        while rel.casefold() in taken:
            k += 1
            rel = f"{split}/{cls}/{stem}-{k}.{ext}"
        taken.add(rel.casefold())
        yield int(i), rel, [rel, r["label"], r["group"], r["split"], r["id"],
                            rel if r["has_mask"] == "1" else ""]


def _write_manifest(tmp: Path, rows: list[list[str]], header: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    (tmp / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8")


def _export_png(ds: PreparedDataset, idx: np.ndarray, tmp: Path) -> None:
    from PIL import Image

    if ds.images.dtype == np.uint16 and ds.channels == 3:
        raise DataError(f"{ds.path}: 16-bit RGB cannot be written as PNG; export with "
                        "--format nifti or dicom")
    manifest = []
    for i, rel, row in _rows(ds, idx, "png"):
        ensure_inside(tmp, tmp / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_hw(np.asarray(ds.images[i]))).save(tmp / "images" / rel)
        if row[-1]:
            (tmp / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(ds.masks[i]) * np.uint8(255)).save(tmp / "masks" / rel)
        manifest.append(row)
    _write_manifest(tmp, manifest, ["path", "label", "group", "split", "id", "mask"])


def secondary_capture(image: np.ndarray, *, study_uid: str, series_uid: str, number: int,
                      description: str, conversion_type: str = "WSD"):
    """A DICOM Secondary Capture dataset for one (C, H, W) uint8/uint16 image, no identity.

    ``conversion_type`` is "WSD" (workstation) for exported data; generated images should pass
    "SYN" (synthetic image), the DICOM term for pixels that never came from a scanner.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = ANONYMOUS_NAME, ANONYMOUS_ID
    ds.PatientBirthDate, ds.PatientSex = "", ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthmed export: no source identifiers copied"
    ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ds.AccessionNumber = ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, number
    ds.Modality, ds.ConversionType = "OT", conversion_type
    ds.SeriesDescription = description
    ds.Manufacturer, ds.SoftwareVersions = "synthmed", __version__
    channels, rows, cols = image.shape
    ds.SamplesPerPixel = channels
    ds.PhotometricInterpretation = "MONOCHROME2" if channels == 1 else "RGB"
    if channels == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    bits = 16 if image.dtype == np.uint16 else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = _hw(image).astype(image.dtype.newbyteorder("<")).tobytes()
    return ds


def _export_dicom(ds: PreparedDataset, idx: np.ndarray, tmp: Path) -> None:
    from pydicom.uid import generate_uid

    study = generate_uid()
    series = {(s, kind): generate_uid() for s in SPLITS for kind in ("image", "mask")}
    manifest = []
    for n, (i, rel, row) in enumerate(_rows(ds, idx, "dcm"), start=1):
        split = row[3]
        img = secondary_capture(np.asarray(ds.images[i]), study_uid=study,
                                series_uid=series[(split, "image")], number=n,
                                description=f"synthmed {split} images")
        ensure_inside(tmp, tmp / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save_as(tmp / "images" / rel, enforce_file_format=True)
        if row[-1]:
            m = secondary_capture(np.asarray(ds.masks[i])[None] * np.uint8(255), study_uid=study,
                                  series_uid=series[(split, "mask")], number=n,
                                  description=f"synthmed {split} masks")
            (tmp / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
            m.save_as(tmp / "masks" / rel, enforce_file_format=True)
        manifest.append(row)
    _write_manifest(tmp, manifest, ["path", "label", "group", "split", "id", "mask"])


def _export_nifti(ds: PreparedDataset, idx: np.ndarray, tmp: Path) -> None:
    import nibabel as nib

    manifest = []
    chosen = set(idx.tolist())
    for split in SPLITS:
        rows = [i for i in ds.indices(split) if i in chosen]
        if not rows:
            continue
        vol = np.stack([image_to_nifti_slice(_hw(np.asarray(ds.images[i]))) for i in rows],
                       axis=2)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp / f"{split}.nii.gz")
        if ds.masks is not None and ds.has_mask[rows].any():
            mvol = np.stack([image_to_nifti_slice(np.asarray(ds.masks[i])) for i in rows], axis=2)
            nib.save(nib.Nifti1Image(mvol.astype(np.uint8), np.eye(4)),
                     tmp / f"{split}_mask.nii.gz")
        for k, i in enumerate(rows):
            r = ds.manifest[i]
            manifest.append([f"{split}.nii.gz", k, r["label"], r["group"], split, r["id"],
                             r["has_mask"]])
    _write_manifest(tmp, manifest, ["file", "slice", "label", "group", "split", "id", "has_mask"])


def export_dataset(dataset_dir: str | os.PathLike, out: str | os.PathLike, fmt: str = "png", *,
                   split: str = "all", force: bool = False) -> Path:
    """Write the images (and masks) of ``split`` of a prepared dataset as ``fmt`` files."""
    out = Path(out)
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"--format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    check_output(out, force=force, kind="export", inputs={"dataset": dataset_dir})
    ds = PreparedDataset(dataset_dir)
    idx = ds.indices(split)
    if len(idx) == 0:
        raise DataError(f"{ds.path}: split {split!r} has no images; choose another --split")
    writer = {"png": _export_png, "dicom": _export_dicom, "nifti": _export_nifti}[fmt]
    needed = int(ds.images[:1].nbytes) * len(idx) * (2 if ds.masks is not None else 1)
    with disk_errors(out, needed), atomic_directory(out, force=force, kind="export") as tmp:
        writer(ds, idx, tmp)
        meta = {"format": fmt, "split": split, "n": int(len(idx)), "dataset": str(ds.path),
                "dataset_content_hash": ds.content_hash, "class_names": ds.class_names,
                "synthmed_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        (tmp / "export.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
