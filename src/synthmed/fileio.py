"""Atomic writes: a file is either the old version or the complete new one, never half-written.

Files are fsynced before the rename that publishes them, so a crash or power loss after the rename
cannot leave an empty file under the final name. Output folders are built in a hidden
``.synthmed-KIND-NAME-*.partial`` sibling, locked while in use, and swapped in with one atomic
exchange; a later run of the same command removes partial folders whose owner has died. A write
that fails for lack of space (or another OS error) ends in one :class:`DiskFullError` line naming
the path and the space needed, not a traceback (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthmed.errors import DiskFullError

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_error(path: str | os.PathLike, err: OSError, needed: int | None = None) -> DiskFullError:
    """The one-line error for an OS error while writing ``path`` (full disk, quota, read-only)."""
    path = Path(path)
    free = _free_bytes(path)
    # numpy's tofile reports a short write as "OSError: N requested and 0 written" with no errno
    short_write = err.errno is None and ("written" in str(err)
                                         or (needed is not None and free is not None
                                             and free < needed))
    if err.errno in _NO_SPACE or short_write:
        need = f"about {human_bytes(needed)} needed" if needed else "more space needed"
        have = f", {human_bytes(free)} free" if free is not None else ""
        return DiskFullError(f"{path}: no space left on device ({need}{have}); free space or "
                             "write to another disk")
    return DiskFullError(f"{path}: cannot write ({err.strerror or type(err).__name__}"
                         f"{': ' + str(err.filename) if err.filename else ''}); check the "
                         "folder's permissions and free space, or write elsewhere")


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike, needed: int | None = None) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into a one-line :class:`DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as e:
        raise disk_error(path, e, needed) from None


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file (or a directory entry list) to the disk; directories are best effort."""
    is_dir = os.path.isdir(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if is_dir:
            return  # Windows cannot open directories
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not is_dir:
            raise
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every file and folder under ``root`` (before it is renamed into place)."""
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            fsync_path(os.path.join(dirpath, f))
        fsync_path(dirpath)


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only be
    read by setting it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    The temp file lives in the same directory so ``os.replace`` is atomic on POSIX and Windows.
    On any exception the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp's private 0600 made report.html, metrics.json, checkpoints... unreadable
            # to a group or a web folder: a replaced file keeps its mode, a new one follows umask
            try:
                mode = path.stat().st_mode & 0o7777
            except OSError:
                mode = 0o666 & ~current_umask()
            os.chmod(tmp_path, mode)
            fsync_path(tmp_path)
        os.replace(tmp_path, path)
        fsync_path(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` atomically and durably; a full disk is one :class:`DiskFullError` line."""
    with disk_errors(path, len(data)), atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_save(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def _lock(path: Path) -> int | None:
    """Hold an exclusive ``flock`` on directory ``path`` (None where flock does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no liveness check, stale partials are left alone
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _partial_prefix(kind: str) -> str:
    return f".synthmed-{kind}-"


def remove_stale_partials(parent: str | os.PathLike, kind: str) -> list[Path]:
    """Delete hidden ``.synthmed-KIND-*.partial`` / ``.old`` folders in ``parent`` that no live
    process holds (left by a killed run of the same command); returns what was removed."""
    parent, removed = Path(parent), []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not (p.name.startswith(_partial_prefix(kind)) and p.name.endswith((".partial", ".old"))
                and p.is_dir() and not p.is_symlink()):
            continue
        try:
            fd = _lock(p)
        except OSError:
            continue  # a running process owns it
        if fd is None:
            continue
        try:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        finally:
            os.close(fd)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False when the
    platform or filesystem cannot, so the caller falls back to two renames."""
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EINVAL)):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, force: bool = False, kind: str = "output",
                     fsync: bool = False) -> Iterator[Path]:
    """Build a directory in a hidden locked sibling and swap it into place at the end.

    An interrupted build leaves no half-written ``path``. With ``force`` an existing ``path`` is
    replaced only after the new one is complete, in one atomic exchange where the OS has one;
    without it the caller must have checked (:func:`synthmed.paths.check_output` decides what
    may be replaced). ``kind`` names the command, so its next run can clean up after a killed
    one; ``fsync`` flushes every file first (datasets).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent, kind)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_partial_prefix(kind)}{path.name[:40]}-",
                                suffix=".partial", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would leak into the final folder
    lock = _lock(tmp)
    try:
        yield tmp
        if fsync:
            fsync_tree(tmp)
        if path.exists() or path.is_symlink():
            if not force:
                raise FileExistsError(path)
            if not _exchange(tmp, path):  # tmp now holds the old folder
                trash = tmp.with_name(tmp.name[:-len(".partial")] + ".old")
                os.replace(path, trash)
                os.replace(tmp, path)
                shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
