"""import_dataset end to end on tiny sources of every kind."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from synthmed.data import PreparedDataset, import_dataset
from synthmed.data.importer import parse_class_names, resolve_labels
from synthmed.errors import DataError

RNG = np.random.default_rng(1)


def _meta(path):
    return json.loads((path / "dataset.json").read_text())


def _split_of_groups(ds):
    by_group = {}
    for g, s in zip(ds.groups, ds.splits, strict=True):
        by_group.setdefault(g, set()).add(s)
    return by_group


def test_class_folders_masks_and_group_regex(png_folder, tmp_path):
    out = import_dataset(png_folder, tmp_path / "out", mask_dir=tmp_path / "masks",
                         group_regex=r"^(case\d+)_", split="0.5,0.25,0.25",
                         allow_missing_class=True)  # 2 patients per class: not in all 3 splits
    ds = PreparedDataset(out)
    assert len(ds) == 8 and ds.class_names == ["benign", "malignant"]
    assert ds.class_counts() == {"benign": 4, "malignant": 4}
    assert set(ds.groups) == {"case0", "case1", "case10", "case11"}
    assert all(len(s) == 1 for s in _split_of_groups(ds).values())
    assert ds.masks is not None and ds.has_mask.all() and ds.masks.max() == 1
    meta = _meta(out)
    assert meta["source"]["labels"] == "class folders"
    assert meta["split"]["groups"] == r"--group-regex '^(case\d+)_'"
    assert meta["split"]["fractions"] == [0.5, 0.25, 0.25]
    src = np.asarray(Image.open(png_folder / "benign" / "case0_0.png"))
    np.testing.assert_array_equal(ds.images[ds.manifest.index(
        next(r for r in ds.manifest if r["id"] == "case0_0"))][0], src)


def test_default_groups_are_images_and_said_so(png_folder, tmp_path):
    out = import_dataset(png_folder, tmp_path / "out")
    meta = _meta(out)
    assert meta["n_groups"] == 8 and "each image is its own group" in meta["split"]["groups"]
    assert not meta["has_masks"]


def test_same_seed_same_dataset_and_seed_changes_split(png_folder, tmp_path):
    kw = {"group_regex": r"^(case\d+)_", "split": "0.5,0.25,0.25", "allow_missing_class": True}
    a = import_dataset(png_folder, tmp_path / "a", seed=3, **kw)
    b = import_dataset(png_folder, tmp_path / "b", seed=3, **kw)
    assert PreparedDataset(a).content_hash == PreparedDataset(b).content_hash
    hashes = {PreparedDataset(import_dataset(png_folder, tmp_path / f"s{s}", seed=s, **kw))
              .content_hash for s in range(6)}
    assert len(hashes) > 1


def test_mask_suffix_pairs_and_excludes_masks(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        Image.fromarray(RNG.integers(0, 256, (10, 12), dtype=np.uint8)).save(src / f"a{i}.png")
        m = np.zeros((10, 12), np.uint8)
        m[2:5, 2:5] = 1
        Image.fromarray(m).save(src / f"a{i}_mask.tif")
    ds = PreparedDataset(import_dataset(src, tmp_path / "out", mask_suffix="_mask", size=8))
    assert len(ds) == 4 and ds.has_mask.all() and ds.images.shape == (4, 1, 8, 8)
    assert "none (no class subfolders)" in _meta(ds.path)["source"]["labels"]
    assert (ds.labels == -1).all()


def test_labels_csv_groups_and_official_split(png_folder, tmp_path):
    rows = ["path,label,group,split"]
    for p in sorted(png_folder.rglob("*.png")):
        rel = p.relative_to(png_folder).as_posix()
        stem = p.stem
        rows.append(f"{rel},{'1' if 'malignant' in rel else '0'},{stem.split('_')[0]},"
                    f"{'test' if stem.endswith('_3') else 'train'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = import_dataset(png_folder, tmp_path / "out", labels_csv=tmp_path / "labels.csv",
                         class_names="0=benign,1=malignant")
    ds = PreparedDataset(out)
    assert ds.class_names == ["benign", "malignant"]
    assert ds.class_counts() == {"benign": 4, "malignant": 4}
    assert ds.meta["splits"] == {"train": 6, "val": 0, "test": 2}
    assert ds.meta["split"]["method"].startswith("official")
    assert ds.meta["split"]["leaking_groups"] == 2  # case1 and case11 in train and test
    resplit = PreparedDataset(import_dataset(png_folder, tmp_path / "re",
                                             labels_csv=tmp_path / "labels.csv", resplit=True,
                                             allow_missing_class=True))
    assert resplit.meta["split"]["method"] == "group-stratified"
    assert all(len(s) == 1 for s in _split_of_groups(resplit).values())


def test_labels_csv_problems(png_folder, tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\nbenign/case0_0.png,benign\n")
    with pytest.raises(DataError, match=r"not listed in .*l.csv \(7 image"):
        import_dataset(png_folder, tmp_path / "o", labels_csv=csv)
    ds = PreparedDataset(import_dataset(png_folder, tmp_path / "o", labels_csv=csv,
                                        skip_bad=True, split="1,0,0"))
    assert len(ds) == 1 and ds.meta["source"]["skipped"]["count"] == 7
    csv.write_text("path,label\nbenign/case0_0.png,benign\nbenign/gone.png,benign\n")
    with pytest.raises(DataError, match="line 3: 'benign/gone.png' not found"):
        import_dataset(png_folder, tmp_path / "o2", labels_csv=csv, skip_bad=True)
    csv.write_text("path,label\nbenign/case0_0.png,benign\nbenign/case0_2.png,benighn\n")
    with pytest.raises(DataError, match="line 3: unknown label 'benighn'"):
        import_dataset(png_folder, tmp_path / "o3", labels_csv=csv, class_names="benign,malignant")


def test_no_labels_and_mixed_layout(png_folder, tmp_path):
    ds = PreparedDataset(import_dataset(png_folder, tmp_path / "o", no_labels=True))
    assert ds.class_names == [] and (ds.labels == -1).all()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(png_folder / "loose.png")
    with pytest.raises(DataError, match="directly in the folder and some in subfolders"):
        import_dataset(png_folder, tmp_path / "o2")
    assert len(PreparedDataset(import_dataset(png_folder, tmp_path / "o3", no_labels=True))) == 9


def test_skip_bad_counts_and_records(png_folder, tmp_path, caplog):
    (png_folder / "benign" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (png_folder / "benign" / "notes.mha").write_bytes(b"x")
    (png_folder / "benign" / "README.txt").write_text("ignored sidecar")
    with pytest.raises(DataError, match="notes.mha"):
        import_dataset(png_folder, tmp_path / "o")
    with caplog.at_level(logging.WARNING, logger="synthmed.data"):
        out = import_dataset(png_folder, tmp_path / "o", skip_bad=True)
    skipped = _meta(out)["source"]["skipped"]
    assert skipped["count"] == 2
    assert {f["file"] for f in skipped["files"]} == {"benign/zz_broken.png", "benign/notes.mha"}
    assert "zz_broken.png" in caplog.text and len(PreparedDataset(out)) == 8


def test_sizes_channels_and_bit_depth(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    Image.fromarray(RNG.integers(0, 256, (10, 10), dtype=np.uint8)).save(src / "a" / "g1.png")
    Image.fromarray(RNG.integers(0, 256, (10, 10), dtype=np.uint8)).save(src / "a" / "g2.png")
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(src / "a" / "c.png")
    with pytest.raises(DataError, match=r"g1.png: is 10x10 but a/c.png is 12x10; pass --size N"):
        import_dataset(src, tmp_path / "o")
    ds = PreparedDataset(import_dataset(src, tmp_path / "o", size=8, split="1,0,0"))
    assert ds.images.shape == (3, 1, 8, 8)
    assert any("RGB image(s) to grayscale" in n for n in ds.meta["source"]["notices"])
    ds3 = PreparedDataset(import_dataset(src, tmp_path / "o3", size=8, channels=3, split="1,0,0"))
    assert ds3.images.shape == (3, 3, 8, 8)
    with pytest.raises(DataError, match="--channels 2"):
        import_dataset(src, tmp_path / "o4", channels=2)


def test_16bit_png_survives(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    imgs = [RNG.integers(0, 65536, (8, 8), dtype=np.uint16) for _ in range(3)]
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(src / f"x{i}.png")
    ds = PreparedDataset(import_dataset(src, tmp_path / "o", bit_depth=16, split="1,0,0"))
    assert ds.images.dtype == np.uint16 and ds.meta["dtype"] == "uint16"
    np.testing.assert_array_equal(ds.images[0, 0], imgs[0])


def test_dicom_folder_patient_groups_and_window(tmp_path, write_dicom):
    src = tmp_path / "dcm"
    for p in range(4):
        for k in range(2):
            raw = RNG.integers(0, 2000, (8, 8)).astype(np.uint16)
            write_dicom(src / ("a" if p % 2 else "b") / f"p{p}_{k}.dcm", raw, slope=1,
                        intercept=-1000, patient=f"PAT{p}")
    write_dicom(src / "a" / "mf.dcm", RNG.integers(0, 2000, (3, 8, 8)).astype(np.uint16),
                slope=1, intercept=-1000, patient="PAT9")
    ds = PreparedDataset(import_dataset(src, tmp_path / "o", window="0,400", split="0.5,0.25,0.25",
                                        allow_missing_class=True))
    assert len(ds) == 11 and set(ds.groups) == {f"PAT{p}" for p in (0, 1, 2, 3, 9)}
    assert all(len(s) == 1 for s in _split_of_groups(ds).values())
    assert ds.meta["split"]["groups"] == "DICOM PatientID"
    assert ds.meta["preprocessing"]["normalize"]["window"] == {"center": 0.0, "width": 400.0}
    assert {r["id"] for r in ds.manifest} >= {"mf_f000", "mf_f002"}


def test_nifti_with_mask_and_skip_empty(tmp_path):
    src = tmp_path / "nii"
    src.mkdir()
    for name in ("s1", "s2"):
        vol = RNG.random((10, 12, 6)).astype(np.float32) * 100
        mask = np.zeros((10, 12, 6), np.uint8)
        mask[2:5, 3:7, 1:4] = 1
        nib.save(nib.Nifti1Image(vol, np.eye(4)), src / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(mask, np.eye(4)), src / f"{name}_seg.nii.gz")
    out = import_dataset(src, tmp_path / "o", mask_suffix="_seg", skip_empty_slices=True,
                         split="0.5,0.5,0")
    ds = PreparedDataset(out)
    assert len(ds) == 6 and ds.has_mask.all() and ds.images.shape[2:] == (12, 10)
    assert set(ds.groups) == {"s1.nii.gz", "s2.nii.gz"}
    assert ds.meta["source"]["empty_slices_skipped"] == 6
    assert "source file" in ds.meta["split"]["groups"]
    one = PreparedDataset(import_dataset(src / "s1.nii.gz", tmp_path / "one", axis=0,
                                         mask_suffix="_seg", split="1,0,0"))
    assert len(one) == 10 and one.masks.sum() > 0


def test_medmnist_npz_keeps_official_splits(tmp_path):
    arrays = {}
    for split, n in (("train", 8), ("val", 4), ("test", 4)):
        arrays[f"{split}_images"] = RNG.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2)[:, None].astype(np.uint8)
    np.savez(tmp_path / "breastmnist.npz", **arrays)
    ds = PreparedDataset(import_dataset(tmp_path / "breastmnist.npz", tmp_path / "o",
                                        split="0.5,0.25,0.25"))
    assert ds.meta["splits"] == {"train": 8, "val": 4, "test": 4} and ds.channels == 3
    assert ds.class_names == ["malignant", "normal, benign"]
    assert "--split ignored" in " ".join(ds.meta["source"]["notices"])
    re = PreparedDataset(import_dataset(tmp_path / "breastmnist.npz", tmp_path / "re",
                                        resplit=True, class_names="0=malignant,1=benign"))
    assert re.meta["split"]["method"] == "group-stratified" and re.class_names[1] == "benign"


def test_generic_npz_keys_drop_label_and_class_names(tmp_path):
    n = 12
    np.savez(tmp_path / "ddti.npz", images=RNG.integers(0, 256, (n, 20, 20), dtype=np.uint8),
             masks=(RNG.random((n, 20, 20)) > 0.5).astype(np.uint8),
             label_binary=np.array([0, 1, -1] * 4, np.int8), case_id=np.arange(n) // 2)
    out = import_dataset(tmp_path / "ddti.npz", tmp_path / "o", size=10, drop_labels=["-1"],
                         npz_keys=["labels=label_binary", "groups=case_id"],
                         class_names="0=benign,1=malignant", split="0.5,0.25,0.25",
                         allow_missing_class=True)
    ds = PreparedDataset(out)
    assert len(ds) == 8 and ds.class_counts() == {"benign": 4, "malignant": 4}
    assert ds.meta["source"]["dropped_labels"] == {"-1": 4}
    assert ds.meta["split"]["groups"] == "npz array 'case_id'"
    assert all(len(s) == 1 for s in _split_of_groups(ds).values())
    kept = PreparedDataset(import_dataset(tmp_path / "ddti.npz", tmp_path / "k",
                                          npz_keys={"labels": "label_binary"}, split="1,0,0"))
    assert (kept.labels == -1).sum() == 4 and kept.class_names == ["0", "1"]
    with pytest.raises(DataError, match="no images left after --drop-label"):
        import_dataset(tmp_path / "ddti.npz", tmp_path / "e", npz_keys={"labels": "label_binary"},
                       drop_labels=["0", "1", "-1"])
    with pytest.raises(DataError, match=r"label '1' has no class in --class-names"):
        import_dataset(tmp_path / "ddti.npz", tmp_path / "e", npz_keys={"labels": "label_binary"},
                       class_names="0=benign")


def test_npz_group_regex_on_ids(tmp_path):
    np.savez(tmp_path / "g.npz", images=np.zeros((4, 4, 4), np.uint8),
             names=np.array(["1_1", "1_2", "2_1", "3_1"]))
    ds = PreparedDataset(import_dataset(tmp_path / "g.npz", tmp_path / "o",
                                        npz_keys=["ids=names"], group_regex=r"^(\d+)_",
                                        split="0.5,0.5,0"))
    assert sorted(set(ds.groups)) == ["1", "2", "3"]
    with pytest.raises(DataError, match="does not match id"):
        import_dataset(tmp_path / "g.npz", tmp_path / "o2", npz_keys=["ids=names"],
                       group_regex=r"^x(\d)")


def test_out_exists_needs_force_and_is_untouched(png_folder, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists; pass --force"):
        import_dataset(png_folder, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError):  # a failing import with --force leaves the old dir alone
        import_dataset(png_folder, out, force=True, size=8, group_regex="^nomatch(")
    assert (out / "keep.txt").exists()
    with pytest.raises(DataError, match="keep.txt: not written by `synthmed data import`"):
        import_dataset(png_folder, out, force=True)  # --force never deletes a user's folder
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    import_dataset(png_folder, out, force=True)
    import_dataset(png_folder, out, force=True, size=8)  # a dataset it wrote: replaced
    assert (out / "dataset.json").exists() and np.load(out / "images.npy").shape[-1] == 8


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": "0.5,0.5,0.5"}, "sum to 1.5"),
    ({"size": 0}, "--size 0"),
    ({"group_regex": "(unclosed"}, "invalid regular expression"),
    ({"group_regex": "^zzz"}, "does not match"),
    ({"mask_dir": "nowhere"}, "--mask-dir nowhere: folder does not exist"),
    ({"mask_dir": "x", "mask_suffix": "_m"}, "choose one"),
    ({"npz_keys": ["labels=x"]}, "only to .npz"),
    ({"class_names": "0=a,0=b"}, "named twice"),
])
def test_option_errors(png_folder, tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        import_dataset(png_folder, tmp_path / "o", **kwargs)
    assert not (tmp_path / "o").exists()


def test_source_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        import_dataset(tmp_path / "missing", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        import_dataset(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(DataError, match="pass a folder"):
        import_dataset(None, tmp_path / "o")
    src = tmp_path / "one"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(src / "a" / f"{i}.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(src / "b" / "0.png")
    with pytest.raises(DataError, match="class 'b' has 1 patient"):
        import_dataset(src, tmp_path / "o")
    ds = PreparedDataset(import_dataset(src, tmp_path / "o", progress=True, split="1,0,0"))
    assert len({r["id"] for r in ds.manifest}) == 4  # clashing stems made unique


def test_label_helpers():
    assert parse_class_names("2=benign, 3=benign,4=malignant") == {
        "2": "benign", "3": "benign", "4": "malignant"}
    assert parse_class_names(["b", "a"]) == {"b": "b", "a": "a"}
    notes: list[str] = []
    labels, names = resolve_labels(["10", "2", None, "-1"], class_map=None, file_names=None,
                                   notices=notes)
    assert names == ["2", "10"] and labels.tolist() == [1, 0, -1, -1] and notes
    merged, names = resolve_labels(["2", "3", "4"], class_map=parse_class_names(
        "2=benign,3=benign,4=malignant"), file_names=None, notices=[])
    assert names == ["benign", "malignant"] and merged.tolist() == [0, 0, 1]
    with pytest.raises(DataError, match="VALUE=NAME"):
        parse_class_names("=x")


def test_npz_skip_empty_slices_drops_empty_masks(tmp_path):
    """DDTI has 7 empty nodule masks; --skip-empty-slices was silently ignored for .npz sources."""
    n = 10
    masks = np.zeros((n, 16, 16), np.uint8)
    masks[[0, 2, 3, 5, 6, 8, 9], 4:9, 4:9] = 1  # records 1, 4 and 7 have empty masks
    np.savez(tmp_path / "m.npz", images=RNG.integers(0, 256, (n, 16, 16), dtype=np.uint8),
             masks=masks, names=np.array([f"case{i}" for i in range(n)]))
    out = import_dataset(tmp_path / "m.npz", tmp_path / "o", npz_keys=["ids=names"],
                         no_labels=True, skip_empty_slices=True, split="1,0,0")
    ds = PreparedDataset(out)
    assert len(ds) == 7 and np.asarray(ds.masks).reshape(7, -1).max(axis=1).min() == 1
    assert ds.meta["source"]["empty_slices_skipped"] == 3
    assert any("dropped 3 record(s) with an empty mask" in x for x in ds.meta["source"]["notices"])
    assert len(PreparedDataset(import_dataset(tmp_path / "m.npz", tmp_path / "all",
                                              no_labels=True, split="1,0,0"))) == n
