"""Image sets from other tools: plain folders of PNG/JPEG/DICOM (class subfolders) and .npz."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthmed.errors import DataError
from synthmed.metrics.inputs import load_images


def _img(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def test_flat_folder_of_png_and_jpeg_is_unlabelled(tmp_path):
    for i in range(3):
        Image.fromarray(_img(i)).save(tmp_path / f"a{i}.png")
    Image.fromarray(_img(9)).save(tmp_path / "b.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    s = load_images(tmp_path, "all")
    assert s.kind == "folder" and s.images.shape == (4, 1, 16, 16) and s.images.dtype == np.uint8
    assert (s.labels == -1).all() and s.class_names == []
    assert np.array_equal(s.images[0, 0], _img(0))  # PNG is lossless
    assert s.meta["notice"].startswith("read 4 images (1x16x16, uint8)")
    assert "no class subfolders" in s.meta["notice"]


def test_class_subfolders_with_dicom_are_classes(tmp_path, write_dicom):
    (tmp_path / "benign").mkdir()
    (tmp_path / "malignant").mkdir()
    for i in range(2):
        Image.fromarray(_img(i)).save(tmp_path / "benign" / f"{i}.png")
    write_dicom(tmp_path / "malignant" / "x.dcm", _img(5).astype(np.uint16) * 10)
    s = load_images(tmp_path, "all")
    assert s.class_names == ["benign", "malignant"] and s.labels.tolist() == [0, 0, 1]
    assert s.ids == ["benign/0.png", "benign/1.png", "malignant/x.dcm"]
    assert "classes from subfolders: benign 2, malignant 1" in s.meta["notice"]


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no PNG/JPEG/DICOM images"):
        load_images(tmp_path, "all")
    Image.fromarray(_img(0)).save(tmp_path / "a.png")
    Image.fromarray(_img(1)).save(tmp_path / "b.png")
    Image.fromarray(_img(2, size=20)).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: shape \(1, 20, 20\).*one size"):
        load_images(tmp_path, "all")


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_npz_layouts_and_float_ranges(tmp_path, layout):
    x = np.stack([_img(i) for i in range(4)]).astype(np.float32) / 255 * 2 - 1  # [-1, 1]
    arr = {"nhw": x, "nhwc": x[..., None], "nchw": x[:, None]}[layout]
    np.savez(tmp_path / "s.npz", images=arr, labels=np.array([0, 1, 1, 0]),
             class_names=np.array(["a", "b"]))
    s = load_images(tmp_path / "s.npz", "all")
    assert s.kind == "npz" and s.images.shape == (4, 1, 16, 16) and s.images.dtype == np.uint8
    assert np.abs(s.images[:, 0].astype(int) - np.stack([_img(i) for i in range(4)])).max() <= 1
    assert s.class_names == ["a", "b"] and s.labels.tolist() == [0, 1, 1, 0]
    assert "float32 values [-1, 1] scaled to uint8" in s.meta["notice"]


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 8, 8)), b=np.zeros(2))
    with pytest.raises(DataError, match="no 'images' array among a, b"):
        load_images(tmp_path / "two.npz", "all")
    np.savez(tmp_path / "flat.npz", images=np.zeros((2, 64), np.uint8))
    with pytest.raises(DataError, match=r"images of shape \(2, 64\)"):
        load_images(tmp_path / "flat.npz", "all")
    np.savez(tmp_path / "lab.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_images(tmp_path / "lab.npz", "all")
