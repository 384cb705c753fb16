"""Export to PNG, DICOM and NIfTI, and back through the importer."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from synthmed.data import PreparedDataset, export_dataset, import_dataset, write_prepared
from synthmed.data.export import SECONDARY_CAPTURE
from synthmed.data.readers import nifti_slice_to_image
from synthmed.errors import DataError


def _by_id(ds: PreparedDataset) -> dict[str, tuple]:
    return {r["id"]: (ds.images[i].tobytes(), r["label"], r["group"], r["split"],
                      ds.masks[i].tobytes() if ds.masks is not None else None)
            for i, r in enumerate(ds.manifest)}


@pytest.mark.parametrize("fmt", ["png", "dicom"])
def test_export_then_import_restores_dataset(phantom_dataset, tmp_path, fmt):
    out = export_dataset(phantom_dataset, tmp_path / fmt, fmt)
    assert (out / "manifest.csv").is_file()
    assert json.loads((out / "export.json").read_text())["n"] == 48
    again = import_dataset(out / "images", tmp_path / "again", labels_csv=out / "manifest.csv",
                           mask_dir=out / "masks")
    assert _by_id(PreparedDataset(again)) == _by_id(PreparedDataset(phantom_dataset))


def test_png_layout_and_mask_values(phantom_dataset, tmp_path):
    out = export_dataset(phantom_dataset, tmp_path / "png", split="test")
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["split"] == "test" for r in rows)
    first = rows[0]
    assert first["path"] == f"test/{first['label']}/{first['id']}.png"
    mask = np.asarray(Image.open(out / "masks" / first["mask"]))
    assert set(np.unique(mask)) <= {0, 255}


def test_dicom_is_anonymous_secondary_capture(phantom_dataset, tmp_path):
    out = export_dataset(phantom_dataset, tmp_path / "dcm", "dicom", split="train")
    files = sorted((out / "images").rglob("*.dcm"))
    dss = [pydicom.dcmread(f) for f in files[:5]]
    d = dss[0]
    assert d.SOPClassUID == SECONDARY_CAPTURE
    assert d.file_meta.MediaStorageSOPClassUID == d.SOPClassUID
    assert str(d.PatientName) == "ANONYMOUS" and d.PatientID == "SYNTHMED"
    assert d.PhotometricInterpretation == "MONOCHROME2" and d.pixel_array.shape == (32, 32)
    assert len({x.SOPInstanceUID for x in dss}) == 5 and len({x.StudyInstanceUID for x in dss}) == 1
    assert not any(g in str(d) for g in PreparedDataset(phantom_dataset).groups)


def test_rgb_and_16bit(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (4, 3, 6, 5), dtype=np.uint8)
    ds = write_prepared(tmp_path / "rgb", images=imgs, labels=np.zeros(4), class_names=["x"],
                        splits=["train"] * 4)
    dcm = export_dataset(ds, tmp_path / "rgb-dcm", "dicom")
    d = pydicom.dcmread(next((dcm / "images").rglob("*.dcm")))
    assert d.PhotometricInterpretation == "RGB" and d.pixel_array.shape == (6, 5, 3)
    png = export_dataset(ds, tmp_path / "rgb-png")
    assert np.asarray(Image.open(next((png / "images").rglob("*.png")))).shape == (6, 5, 3)
    deep = rng.integers(0, 65536, (3, 1, 6, 5), dtype=np.uint16)
    ds16 = write_prepared(tmp_path / "d16", images=deep, labels=[-1] * 3, class_names=[],
                          splits=["train"] * 3)
    png16 = export_dataset(ds16, tmp_path / "png16")
    back = np.asarray(Image.open(png16 / "images" / "train" / "unlabelled" / "000000.png"))
    np.testing.assert_array_equal(back, deep[0, 0])
    d16 = pydicom.dcmread(next((export_dataset(ds16, tmp_path / "dcm16", "dicom") / "images")
                               .rglob("000001.dcm")))
    assert d16.BitsAllocated == 16
    np.testing.assert_array_equal(d16.pixel_array, deep[1, 0])
    rgb16 = write_prepared(tmp_path / "r16", images=np.zeros((1, 3, 4, 4), np.uint16),
                           labels=[-1], class_names=[], splits=["train"])
    with pytest.raises(DataError, match="16-bit RGB"):
        export_dataset(rgb16, tmp_path / "bad")


def test_nifti_one_volume_per_split(phantom_dataset, tmp_path):
    out = export_dataset(phantom_dataset, tmp_path / "nii", "nifti")
    ds = PreparedDataset(phantom_dataset)
    for split in ("train", "val", "test"):
        vol = np.asarray(nib.load(out / f"{split}.nii.gz").dataobj)
        idx = ds.indices(split)
        assert vol.shape == (32, 32, len(idx)) and vol.dtype == np.uint8
        np.testing.assert_array_equal(nifti_slice_to_image(vol[:, :, 0]), ds.images[idx[0], 0])
        mvol = np.asarray(nib.load(out / f"{split}_mask.nii.gz").dataobj)
        np.testing.assert_array_equal(nifti_slice_to_image(mvol[:, :, -1]), ds.masks[idx[-1]])
    again = PreparedDataset(import_dataset(out / "train.nii.gz", tmp_path / "again",
                                           mask_suffix="_mask", split="1,0,0"))
    np.testing.assert_array_equal(again.images, ds.images[ds.indices("train")])
    np.testing.assert_array_equal(again.masks, ds.masks[ds.indices("train")])


def test_export_errors(phantom_dataset, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists; pass --force"):
        export_dataset(phantom_dataset, tmp_path / "taken")
    export_dataset(phantom_dataset, tmp_path / "taken", force=True, split="val")
    with pytest.raises(DataError, match="--format 'jpeg'"):
        export_dataset(phantom_dataset, tmp_path / "x", "jpeg")
    with pytest.raises(DataError, match="split 'holdout'"):
        export_dataset(phantom_dataset, tmp_path / "x", split="holdout")
    with pytest.raises(DataError, match="not a prepared dataset"):
        export_dataset(tmp_path / "taken", tmp_path / "y")
    empty = write_prepared(tmp_path / "e", images=np.zeros((2, 1, 4, 4), np.uint8), labels=[-1, -1],
                           class_names=[], splits=["train", "train"])
    with pytest.raises(DataError, match="split 'test' has no images"):
        export_dataset(empty, tmp_path / "z", split="test")
    assert not (tmp_path / "z").exists()


def test_secondary_capture_conversion_type():
    from synthmed.data.export import secondary_capture

    ds = secondary_capture(np.zeros((1, 4, 4), np.uint8), study_uid="1.2.3", series_uid="1.2.3.4",
                           number=1, description="x", conversion_type="SYN")
    assert ds.ConversionType == "SYN" and ds.Rows == 4
