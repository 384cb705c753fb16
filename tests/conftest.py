"""Shared fixtures: tiny data written to tmp_path, and the optional real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the checkout; tests using it skip cleanly when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real datasets not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """A small prepared phantom dataset (48 images, 32x32, with masks), built once per session."""
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, make_phantom
    from synthmed.data.splits import group_stratified_split

    ph = make_phantom(n=48, size=32, seed=0)
    splits = group_stratified_split(ph["labels"], ph["groups"], seed=0)
    out = tmp_path_factory.mktemp("phantom") / "prepared"
    return write_prepared(out, images=ph["images"][:, None], labels=ph["labels"], splits=splits,
                          class_names=CLASS_NAMES, ids=ph["ids"], groups=ph["groups"],
                          masks=ph["masks"], name="phantom-test")


def _write_dicom(path, pixels, *, slope=None, intercept=None, patient="P001",
                 photometric=None, with_pixels=True, signed=False):
    """A minimal valid DICOM file: (H, W) gray, (F, H, W) multi-frame or (H, W, 3) RGB."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr = np.asarray(pixels)
    rgb = photometric == "RGB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient, "Doe^Jane", "CT"
    if with_pixels:
        ds.SamplesPerPixel = 3 if rgb else 1
        ds.PhotometricInterpretation = photometric or "MONOCHROME2"
        if rgb:
            ds.PlanarConfiguration = 0
        if arr.ndim == 3 and not rgb:
            ds.NumberOfFrames = arr.shape[0]
        ds.Rows, ds.Columns = arr.shape[-3 if rgb else -2], arr.shape[-2 if rgb else -1]
        bits = arr.dtype.itemsize * 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        if slope is not None:
            ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
        ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def write_dicom():
    """Factory: ``write_dicom(path, pixels, slope=..., intercept=..., patient=...)``."""
    return _write_dicom


def _write_png_folder(root, *, classes=("benign", "malignant"), per_class=4, size=16,
                      mask_dir=None, seed=0):
    """``root/<class>/caseK_I.png`` gray images, two cases per class; masks in ``mask_dir``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        for i in range(per_class):
            stem = f"case{c * 10 + i % 2}_{i}"
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / name / f"{stem}.png")
            if mask_dir is not None:
                m = np.zeros((size, size), np.uint8)
                m[2:8, 3:9] = 255
                (mask_dir / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(m).save(mask_dir / name / f"{stem}.png")
    return root


@pytest.fixture
def png_folder(tmp_path):
    """8 gray 16x16 PNGs in two class folders (cases case0/case1/case10/case11) plus masks."""
    return _write_png_folder(tmp_path / "src", mask_dir=tmp_path / "masks")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test tensors run faster on one thread, and OpenMP threads spin badly when the
    machine is oversubscribed; subprocess tests set their own threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
