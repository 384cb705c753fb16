"""synthmed.paths: names built from data stay inside their folder; --force replaces only what the
same command wrote, never an input."""

from __future__ import annotations

import json
import os

import pytest

from synthmed.errors import DataError
from synthmed.paths import (
    MAX_NAME_BYTES,
    check_output,
    ensure_inside,
    member_path,
    safe_component,
    unique_components,
)

ODD_NAMES = ["../../escape", "/etc/passwd", "a/b", "a\\b", "nul\0byte", "..", ".", "", "x" * 300,
             "恶性 tumör", "ü" * 200, ".hidden", "-rf", "CON", "line\nbreak", "C:\\x"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_safe_component_is_one_harmless_path_part(name, tmp_path):
    s = safe_component(name)
    assert s and s not in (".", "..") and not s.startswith((".", "-"))
    assert not any(c in s for c in "/\\\0\n:")
    assert len(s.encode("utf-8")) <= MAX_NAME_BYTES
    assert s.upper() != "CON"
    path = tmp_path / s
    assert ensure_inside(tmp_path, path) == path
    path.write_text("x")  # a real file name on this file system
    assert [p.name for p in tmp_path.iterdir()] == [s]


def test_safe_component_keeps_ordinary_and_non_ascii_names():
    assert safe_component("benign") == "benign"
    assert safe_component("Grade_2.a-b") == "Grade_2.a-b"
    assert safe_component("恶性") == "恶性"
    assert safe_component("benign tumour") == "benign_tumour"
    long_a, long_b = safe_component("x" * 300 + "a"), safe_component("x" * 300 + "b")
    assert long_a != long_b  # truncated names keep a hash of the original


def test_unique_components_never_merge_two_classes():
    names = ["a/b", "a_b", "A_B", "../a_b", "x"]
    out = unique_components(names)
    assert len({s.casefold() for s in out}) == len(names)
    assert out[0] == "a_b" and out[-1] == "x"


def test_ensure_inside_refuses_escapes_and_symlinks(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(DataError, match="outside the output folder"):
        ensure_inside(root, root / ".." / "x.png")
    with pytest.raises(DataError, match="outside"):
        ensure_inside(root, "/etc/x.png")
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(DataError, match="outside"):
        ensure_inside(root, root / "link" / "x.png")


@pytest.mark.parametrize("rel", ["../x.png", "a/../../x.png", "/etc/passwd", "C:\\x.png",
                                 "..\\x.png", "a\0b.png"])
def test_member_path_refuses_manifest_escapes(rel, tmp_path):
    with pytest.raises(DataError, match="points outside") as e:
        member_path(tmp_path, rel, "manifest.csv line 2")
    assert "\n" not in str(e.value) and "manifest.csv line 2" in str(e.value)


def test_member_path_refuses_symlinks_out_and_accepts_members(tmp_path):
    (tmp_path / "images").symlink_to("/etc")
    with pytest.raises(DataError, match="points outside"):
        member_path(tmp_path, "images/passwd", "m")
    assert member_path(tmp_path, "dicom/a.dcm", "m") == tmp_path / "dicom" / "a.dcm"
    with pytest.raises(DataError, match="no file named"):
        member_path(tmp_path, "", "m")


def _dataset_dir(path):
    path.mkdir()
    (path / "dataset.json").write_text(json.dumps({"format": "x", "synthmed_version": "0"}))
    (path / "images.npy").write_bytes(b"")
    return path


def test_check_output_force_rules(tmp_path):
    out = tmp_path / "o"
    assert check_output(out, force=False, kind="dataset") == out  # new: fine
    out.mkdir()
    with pytest.raises(DataError, match="already exists; pass --force"):
        check_output(out, force=False, kind="dataset")
    check_output(out, force=True, kind="dataset")  # empty: may be replaced
    check_output(out, force=False, kind="synthetic")  # generate writes into an empty folder
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"notes.txt: not written by `synthmed data import`"):
        check_output(out, force=True, kind="dataset")
    ds = _dataset_dir(tmp_path / "ds")
    check_output(ds, force=True, kind="dataset")  # its own output
    with pytest.raises(DataError, match=r"dataset.json: .* holds a prepared dataset"):
        check_output(ds, force=True, kind="synthetic")
    (ds / "dataset.json").write_text("{}")  # a dataset.json synthmed did not write
    with pytest.raises(DataError, match="dataset.json: missing or not written by synthmed"):
        check_output(ds, force=True, kind="dataset")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        check_output(tmp_path / "file", force=True, kind="dataset")
    (tmp_path / "link").symlink_to(_dataset_dir(tmp_path / "ds2"))
    with pytest.raises(DataError, match="symbolic link"):
        check_output(tmp_path / "link", force=True, kind="dataset")


def test_check_output_never_touches_inputs(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    inside = _dataset_dir(src / "prepared")
    inputs = {"source": src}
    with pytest.raises(DataError, match="is the source"):
        check_output(src, force=True, kind="dataset", inputs=inputs)
    with pytest.raises(DataError, match="contains the source"):
        check_output(tmp_path, force=True, kind="dataset", inputs=inputs)
    with pytest.raises(DataError, match="lies inside the source"):
        check_output(inside, force=True, kind="dataset", inputs=inputs)
    check_output(src / "new", force=False, kind="dataset", inputs=inputs)  # deletes nothing
    link = tmp_path / "alias"
    link.symlink_to(src)
    with pytest.raises(DataError, match="is the source"):
        check_output(link, force=True, kind="dataset", inputs=inputs)
    assert os.path.exists(inside / "dataset.json")


def test_phantom_folders_of_older_releases_are_recognised_by_their_readme(tmp_path):
    old = tmp_path / "raw"
    (old / "images").mkdir(parents=True)
    (old / "labels.csv").write_text("path,label,group\n")
    (old / "README.txt").write_text("synthmed phantom: 6 procedural images\n")
    check_output(old, force=True, kind="phantom")
    (old / "README.txt").write_text("my phantom study notes\n")
    with pytest.raises(DataError, match="phantom.json: missing or not written by synthmed"):
        check_output(old, force=True, kind="phantom")
