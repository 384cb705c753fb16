"""File readers: every format keeps its values (and bit depth); bad files raise BadFileError."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from synthmed.data.folders import natural_key, read_labels_csv
from synthmed.data.npz import NpzSource, fetch_medmnist, parse_npz_keys
from synthmed.data.readers import (
    BadFileError,
    file_kind,
    image_to_nifti_slice,
    nifti_slice_to_image,
    read_frames,
    read_mask_frames,
    split_ext,
)
from synthmed.errors import DataError

RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (12, 10), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize(("ext", "arr"), [
    ("png", GRAY8), ("png", GRAY16), ("png", RGB8), ("bmp", GRAY8), ("bmp", RGB8),
    ("tif", GRAY8), ("tif", GRAY16), ("tiff", RGB8), ("gif", GRAY8),
])
def test_lossless_formats_keep_values_and_bit_depth(tmp_path, ext, arr):
    path = tmp_path / f"x.{ext}"
    Image.fromarray(arr).save(path)
    fr = read_frames(path)
    assert fr.kind == "image" and len(fr.frames) == 1
    out = fr.frames[0]
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_jpeg_gray_and_rgb_read_approximately(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 10, dtype=np.uint8), (12, 1))
    Image.fromarray(smooth).save(tmp_path / "g.jpg", quality=95)
    Image.fromarray(np.stack([smooth, 255 - smooth, smooth], -1)).save(tmp_path / "c.jpeg")
    g = read_frames(tmp_path / "g.jpg").frames[0]
    c = read_frames(tmp_path / "c.jpeg").frames[0]
    assert g.shape == (12, 10) and g.dtype == np.uint8
    assert c.shape == (12, 10, 3)
    assert np.abs(g.astype(int) - smooth).max() < 12


def test_rgb_with_identical_channels_reads_as_gray(tmp_path):
    Image.fromarray(np.repeat(GRAY8[..., None], 3, -1)).save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_frames(tmp_path / "x.png").frames[0], GRAY8)


def test_multipage_tiff_gives_one_frame_per_page(tmp_path):
    pages = [Image.fromarray(GRAY8), Image.fromarray(255 - GRAY8)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    frames = read_frames(tmp_path / "m.tif").frames
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[1], 255 - GRAY8)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_image_is_bad_file_naming_it(tmp_path, damage):
    path = tmp_path / "broken.png"
    Image.fromarray(GRAY8).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a png at all")
    with pytest.raises(BadFileError, match="broken.png"):
        read_frames(path)


def test_file_kinds(tmp_path, write_dicom):
    assert file_kind(tmp_path / "a.PNG") == "image"
    assert file_kind(tmp_path / "a.nii.gz") == "nifti"
    assert file_kind(tmp_path / "a.dcm") == "dicom"
    assert file_kind(tmp_path / "labels.csv") is None
    assert file_kind(tmp_path / ".DS_Store") is None
    write_dicom(tmp_path / "IM000001", GRAY8)
    assert file_kind(tmp_path / "IM000001") == "dicom"
    (tmp_path / "scan.mha").write_bytes(b"x")
    with pytest.raises(BadFileError, match=r"scan.mha.*unsupported"):
        file_kind(tmp_path / "scan.mha")
    assert split_ext("brain.nii.gz") == ("brain", ".nii.gz")
    assert sorted(["img10", "img2", "img1"], key=natural_key) == ["img1", "img2", "img10"]


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_frames(tmp_path / "nope.png")


# -- DICOM -----------------------------------------------------------------------------------------
def test_dicom_single_frame_applies_rescale(tmp_path, write_dicom):
    raw = RNG.integers(0, 4096, (8, 6)).astype(np.uint16)
    write_dicom(tmp_path / "ct.dcm", raw, slope=2.0, intercept=-1024, patient="PAT7")
    fr = read_frames(tmp_path / "ct.dcm")
    assert fr.kind == "dicom" and fr.patient_id == "PAT7"
    np.testing.assert_allclose(fr.frames[0], raw * 2.0 - 1024)


def test_dicom_multi_frame_gives_each_frame(tmp_path, write_dicom):
    raw = RNG.integers(0, 1000, (3, 8, 6)).astype(np.int16)
    write_dicom(tmp_path / "mf.dcm", raw, slope=1, intercept=-1000, signed=True)
    frames = read_frames(tmp_path / "mf.dcm").frames
    assert len(frames) == 3 and frames[0].shape == (8, 6)
    np.testing.assert_allclose(frames[2], raw[2] - 1000.0)


def test_dicom_without_rescale_keeps_dtype_and_rgb(tmp_path, write_dicom):
    write_dicom(tmp_path / "us.dcm", GRAY8)
    write_dicom(tmp_path / "rgb.dcm", RGB8, photometric="RGB")
    g = read_frames(tmp_path / "us.dcm").frames[0]
    assert g.dtype == np.uint8
    np.testing.assert_array_equal(g, GRAY8)
    np.testing.assert_array_equal(read_frames(tmp_path / "rgb.dcm").frames[0], RGB8)


def test_dicom_monochrome1_is_inverted(tmp_path, write_dicom):
    write_dicom(tmp_path / "m1.dcm", GRAY8, photometric="MONOCHROME1")
    out = read_frames(tmp_path / "m1.dcm").frames[0]
    np.testing.assert_allclose(out, GRAY8.max() + GRAY8.min() - GRAY8.astype(np.float32))


def test_dicom_without_pixel_data_is_bad_file(tmp_path, write_dicom):
    write_dicom(tmp_path / "report.dcm", GRAY8, with_pixels=False)
    with pytest.raises(BadFileError, match=r"report.dcm.*no pixel data"):
        read_frames(tmp_path / "report.dcm")


def test_not_a_dicom_is_bad_file(tmp_path):
    (tmp_path / "fake.dcm").write_bytes(b"hello")
    with pytest.raises(BadFileError, match="fake.dcm"):
        read_frames(tmp_path / "fake.dcm")


# -- NIfTI -----------------------------------------------------------------------------------------
def _nifti(path, vol):
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    return path


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_nifti_slices_along_axis(tmp_path, axis):
    vol = RNG.random((5, 6, 7)).astype(np.float32)
    frames = read_frames(_nifti(tmp_path / "v.nii.gz", vol), axis=axis).frames
    assert len(frames) == vol.shape[axis]
    np.testing.assert_allclose(frames[1], nifti_slice_to_image(np.take(vol, 1, axis=axis)))


def test_nifti_orientation_helpers_are_inverse():
    img = RNG.random((4, 7))
    np.testing.assert_array_equal(nifti_slice_to_image(image_to_nifti_slice(img)), img)


def test_nifti_with_nan_is_bad_file(tmp_path):
    vol = np.zeros((4, 4, 2), np.float32)
    vol[1, 1, 1] = np.nan
    with pytest.raises(BadFileError, match=r"bad.nii.*NaN or Inf"):
        read_frames(_nifti(tmp_path / "bad.nii", vol))


def test_nifti_bad_axis_and_4d(tmp_path):
    path = _nifti(tmp_path / "v.nii.gz", np.zeros((3, 3, 3), np.float32))
    with pytest.raises(DataError, match="--axis 3"):
        read_frames(path, axis=3)
    fr = read_frames(_nifti(tmp_path / "t.nii.gz", np.zeros((3, 3, 3, 5), np.float32)))
    assert len(fr.frames) == 15 and "read as 5 volumes" in fr.notes[0]
    with pytest.raises(BadFileError, match="shape"):
        read_frames(_nifti(tmp_path / "t5.nii.gz", np.zeros((3, 3, 3, 2, 2), np.float32)))


def test_corrupt_nifti_is_bad_file(tmp_path):
    (tmp_path / "c.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BadFileError, match="c.nii.gz"):
        read_frames(tmp_path / "c.nii.gz")


def test_mask_frames_binarized_and_checked(tmp_path):
    Image.fromarray((GRAY8 > 128).astype(np.uint8) * 255).save(tmp_path / "m.png")
    (m,) = read_mask_frames(tmp_path / "m.png", shapes=[(12, 10)], image="a.png")
    assert set(np.unique(m)) <= {0, 1} and m.dtype == np.uint8
    with pytest.raises(BadFileError, match=r"mask is 12x10 but image a.png is 12x12"):
        read_mask_frames(tmp_path / "m.png", shapes=[(12, 12)], image="a.png")
    with pytest.raises(BadFileError, match="frame"):
        read_mask_frames(tmp_path / "m.png", shapes=[(12, 10)] * 2, image="a.png")


# -- labels CSV ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "match"), [
    ("file,label\na.png,x\n", "header"),
    ("path,label\na.png,benign\na.png,benign\n", "line 3.*listed twice"),
    ("path,label\na.png,maligant\n", "line 2.*unknown label 'maligant'"),
    ("path,label,split\na.png,benign,holdout\n", "line 2.*split 'holdout'"),
    ("path,label\n,benign\n", "line 2.*empty path"),
])
def test_labels_csv_errors_name_the_line(tmp_path, text, match):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        read_labels_csv(tmp_path / "l.csv", known={"benign", "malignant"})


def test_labels_csv_reads_rows(tmp_path):
    (tmp_path / "l.csv").write_text("Path,Label,Group,Split\n./a/x.png,benign,p1,test\nb.png,,,\n")
    rows = read_labels_csv(tmp_path / "l.csv")
    assert rows["a/x.png"].label == "benign" and rows["a/x.png"].group == "p1"
    assert rows["a/x.png"].split == "test" and rows["b.png"].label is None
    with pytest.raises(DataError, match="does not exist"):
        read_labels_csv(tmp_path / "none.csv")


# -- npz -------------------------------------------------------------------------------------------
def _medmnist(path, *, rgb=False, size=8, splits=("train", "val", "test"), counts=(6, 2, 2)):
    arrays = {}
    for s, n in zip(splits, counts, strict=False):
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{s}_images"] = RNG.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{s}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("rgb", "size"), [(False, 8), (True, 8), (False, 20)])
def test_medmnist_layout_keeps_official_splits(tmp_path, rgb, size):
    src = NpzSource(_medmnist(tmp_path / "pathmnist.npz", rgb=rgb, size=size))
    recs = list(src)
    assert src.kind == "medmnist" and len(src) == 10
    assert [r.split for r in recs].count("val") == 2
    assert recs[0].image.shape == ((size, size, 3) if rgb else (size, size))
    assert {r.label for r in recs} == {"0", "1"}


def test_medmnist_known_names_and_train_only(tmp_path):
    src = NpzSource(_medmnist(tmp_path / "breastmnist.npz", splits=("train",), counts=(4,)))
    assert src.class_names == ["malignant", "normal, benign"]
    assert {r.split for r in src} == {"train"}


def test_synthetic_set_uses_class_names_and_seeds(tmp_path):
    np.savez(tmp_path / "synthetic.npz", train_images=RNG.integers(0, 256, (3, 8, 8), np.uint8),
             train_labels=np.array([[0], [1], [1]]), class_names=np.array(["benign", "malignant"]),
             seeds=np.array([5, 6, 7]))
    src = NpzSource(tmp_path / "synthetic.npz")
    assert src.kind == "synthetic" and src.class_names == ["benign", "malignant"]
    assert [r.name for r in src][0] == "000000_seed5"


def test_generic_npz_with_key_mapping(tmp_path):
    np.savez(tmp_path / "g.npz", images=RNG.integers(0, 256, (4, 1, 8, 8), np.uint8),
             masks=np.ones((4, 8, 8), np.uint8) * 3, label_binary=np.array([0, 1, -1, 1]),
             case_id=np.array([1, 1, 2, 3]))
    src = NpzSource(tmp_path / "g.npz", keys=parse_npz_keys(["labels=label_binary",
                                                             "groups=case_id"]))
    recs = list(src)
    assert recs[0].image.shape == (8, 8) and recs[2].label == "-1" and recs[3].group == "3"
    assert recs[0].mask.max() == 1


@pytest.mark.parametrize(("arrays", "keys", "match"), [
    ({"x": np.zeros((2, 4, 4))}, {}, "no array 'images'"),
    ({"images": np.zeros((2, 4, 4, 4, 4))}, {}, "expected"),
    ({"images": np.zeros((2, 4, 4)), "labels": np.zeros((2, 3))}, {}, "multi-label"),
    ({"images": np.zeros((2, 4, 4)), "labels": np.zeros(3)}, {}, "3 entries for 2"),
    ({"images": np.zeros((2, 4, 4)), "masks": np.zeros((2, 5, 4))}, {}, "masks have shape"),
    ({"images": np.full((2, 4, 4), np.nan)}, {}, "NaN"),
    ({"images": np.zeros((2, 4, 4))}, {"labels": "lab"}, "no array 'lab'"),
])
def test_npz_errors(tmp_path, arrays, keys, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        NpzSource(tmp_path / "bad.npz", keys=keys)


def test_npz_key_parsing_and_corrupt_file(tmp_path):
    assert parse_npz_keys({"labels": "y"}) == {"labels": "y"}
    with pytest.raises(DataError, match="unknown role 'label'"):
        parse_npz_keys(["label=y"])
    with pytest.raises(DataError, match="ROLE=KEY"):
        parse_npz_keys(["labels"])
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DataError, match="c.npz"):
        NpzSource(tmp_path / "c.npz")


def test_medmnist_download_needs_the_package(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "medmnist", None)
    with pytest.raises(DataError, match="medmnist package is not installed"):
        fetch_medmnist("breastmnist", tmp_path)
