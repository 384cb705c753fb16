"""synthmed.fileio: atomic folders swapped in whole, stale partial folders cleaned, fsync before
rename, and full disks as one-line errors that keep the old data (mocked, and on a real tmpfs)."""

from __future__ import annotations

import errno
import os
import subprocess

import numpy as np
import pytest
import torch

from synthmed import fileio
from synthmed.data import import_dataset, write_prepared
from synthmed.errors import DiskFullError
from synthmed.training.checkpoint import save_checkpoint


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _tiny_dataset(out, value=0, n=4, size=8, force=False):
    return write_prepared(out, images=np.full((n, 1, size, size), value, np.uint8),
                          labels=[0] * n, class_names=["a"], splits=["train"] * n, force=force)


def _hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_force_swaps_the_new_folder_in_whole(tmp_path):
    out = _tiny_dataset(tmp_path / "ds", value=1)
    inode = os.stat(out).st_ino
    _tiny_dataset(out, value=2, force=True)
    assert np.load(out / "images.npy").max() == 2 and os.stat(out).st_ino != inode
    assert _hidden(tmp_path) == []  # neither the build folder nor the old one is left
    assert oct(os.stat(out).st_mode & 0o777) != oct(0o700)  # not mkdtemp's private mode


def test_next_run_removes_stale_partials_of_the_same_command_only(tmp_path):
    dead = tmp_path / ".synthmed-dataset-old-abc123.partial"
    dead_old = tmp_path / ".synthmed-dataset-old-abc123.old"
    other_cmd = tmp_path / ".synthmed-synthetic-x-abc.partial"
    alive = tmp_path / ".synthmed-dataset-busy-def456.partial"
    for p in (dead, dead_old, other_cmd, alive):
        (p / "sub").mkdir(parents=True)
        (p / "sub" / "f.npy").write_bytes(b"x")
    user = tmp_path / ".my.partial"  # a user's hidden folder: not ours by name
    user.mkdir()
    held = fileio._lock(alive)  # a running import holds its build folder
    try:
        _tiny_dataset(tmp_path / "ds")
    finally:
        os.close(held)
    assert not dead.exists() and not dead_old.exists()
    assert alive.exists() and other_cmd.exists() and user.exists()


def test_atomic_path_fsyncs_before_rename(tmp_path, monkeypatch):
    calls = []
    real = fileio.fsync_path
    monkeypatch.setattr(fileio, "fsync_path", lambda p: calls.append(str(p)) or real(p))
    fileio.atomic_write_text(tmp_path / "a.txt", "hi")
    assert calls[0].endswith(".tmp") and calls[-1] == str(tmp_path)


def test_write_prepared_on_full_disk_is_one_line_and_keeps_old_data(tmp_path, monkeypatch):
    out = _tiny_dataset(tmp_path / "ds", value=7)
    before = (out / "images.npy").read_bytes()
    monkeypatch.setattr(np, "save", _enospc)
    with pytest.raises(DiskFullError) as e:
        _tiny_dataset(out, value=9, n=1000, size=32, force=True)
    msg = str(e.value)
    assert "\n" not in msg and str(out) in msg and "no space left" in msg
    assert "about 1.1 MB needed" in msg  # 1000 x 32 x 32 bytes of images, plus metadata
    assert (out / "images.npy").read_bytes() == before
    assert _hidden(tmp_path) == []


def test_checkpoint_save_on_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints"
    save_checkpoint({"w": torch.zeros(4)}, ckpt, 1)
    before = (ckpt / "latest.pt").read_bytes()

    class Full:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        write = staticmethod(_enospc)

    monkeypatch.setattr(fileio, "open", Full, raising=False)
    with pytest.raises(DiskFullError, match=r"latest.pt: no space left on device \(about"):
        save_checkpoint({"w": torch.ones(1000)}, ckpt, 2)
    assert (ckpt / "latest.pt").read_bytes() == before
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest.pt", "step-00000001.pt"]


def test_other_os_errors_name_the_path(tmp_path):
    err = fileio.disk_error(tmp_path / "x", OSError(errno.EROFS, "Read-only file system"))
    assert "cannot write (Read-only file system)" in str(err) and str(tmp_path / "x") in str(err)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 3 MB tmpfs (needs root and mount rights); skipped where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot run mount")
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=20)


def test_real_full_disk(small_tmpfs, tmp_path):
    """Import and checkpoint save into a 3 MB tmpfs: one-line errors, old data intact."""
    from PIL import Image

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):  # 30 x 1 MB of incompressible pixels as images.npy
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), np.uint8)).save(src / f"{i}.png")
    old = _tiny_dataset(small_tmpfs / "ds", value=3)
    with pytest.raises(DiskFullError, match="no space left on device") as e:
        import_dataset(tmp_path / "src", old, force=True, no_labels=True, progress=False)
    assert "MB needed" in str(e.value) and str(old) in str(e.value)
    assert np.load(old / "images.npy").max() == 3
    assert _hidden(small_tmpfs) == []
    ckpt = small_tmpfs / "ckpt"
    save_checkpoint({"w": torch.zeros(10)}, ckpt, 1)
    with pytest.raises(DiskFullError, match="latest.pt: no space left on device"):
        save_checkpoint({"w": torch.zeros(2_000_000)}, ckpt, 2)  # 8 MB
    assert torch.load(ckpt / "latest.pt", weights_only=True)["w"].shape == (10,)
    assert not [p for p in ckpt.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_save_removes_temp_files_of_a_killed_save(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / ".latest.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    save_checkpoint({"w": torch.zeros(4)}, ckpt, 1)
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest.pt", "step-00000001.pt"]


def test_partial_of_a_sigkilled_build_is_removed_by_the_next_run(tmp_path):
    """A real SIGKILL in the middle of a build: its locked .partial stays while it lives and is
    removed by the next write in the same parent once the process is dead."""
    import signal
    import sys
    import time

    code = ("import sys, time\nfrom synthmed.fileio import atomic_directory\n"
            "with atomic_directory(sys.argv[1], kind='dataset') as tmp:\n"
            "    (tmp / 'images.npy').write_bytes(b'x' * 1000)\n"
            "    print('building', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "a")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        assert len(partial) == 1
        _tiny_dataset(tmp_path / "b")  # the owner is alive: its build folder is kept
        assert partial[0].exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    time.sleep(0.05)
    _tiny_dataset(tmp_path / "c")
    assert not partial[0].exists() and not (tmp_path / "a").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "c"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    """mkstemp's private 0600 reached report.html, metrics.json, config.yaml and checkpoints:
    a report shared from a group folder was unreadable to the group (issue 19)."""
    from synthmed.fileio import atomic_write_bytes, atomic_write_json

    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
        atomic_write_bytes(tmp_path / "c.pt", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == mode
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == mode


def test_atomic_replace_keeps_the_existing_mode(tmp_path):
    from synthmed.fileio import atomic_write_text

    (tmp_path / "r.html").write_text("old")
    os.chmod(tmp_path / "r.html", 0o640)
    atomic_write_text(tmp_path / "r.html", "new")
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o640
