"""Checkpoints: complete state, written atomically, loaded with ``weights_only=True``.

A checkpoint holds the training method's state (for a GAN: G, D, both optimizers, the
augmentation state), the EMA of the sampling network, the step, the data-sampler position, the RNG
states of python/numpy/torch, the augmentation state, the resolved config and the synthmed
version: everything needed for a resumed run to end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_write_bytes, disk_errors, fsync_path, sha256_file

#: 1: the GAN-only trainer (no ``checkpoint_format`` key); 2: the generic training engine, whose
#: checkpoints hold the method's own keys beside the trainer's (format-1 GAN keys unchanged).
CHECKPOINT_FORMAT = 2

_STEP_RE = re.compile(r"^step-(\d{8})\.pt$")


def step_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def save_checkpoint(state: dict[str, Any], ckpt_dir: str | os.PathLike, step: int, *,
                    keep: int = 3, periodic: bool = True) -> Path:
    """Write ``latest.pt`` (and ``step-XXXXXXXX.pt`` when ``periodic``); keep the last ``keep``.

    Each file is fsynced before the rename that publishes it; on a full disk the previous
    checkpoints stay intact and the error is one :class:`DiskFullError` line with the size.
    """
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest.pt"
    buf = io.BytesIO()  # serialize first: the size is known, and a full disk is an OSError here
    torch.save(state, buf)
    data = buf.getbuffer()
    with disk_errors(ckpt_dir, len(data)):
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".latest.pt.*.tmp"):  # left by a killed save (one writer/run)
            stale.unlink(missing_ok=True)
        atomic_write_bytes(latest, data)  # fsynced before the rename
        if periodic:
            target = ckpt_dir / step_name(step)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.unlink(missing_ok=True)
            try:  # a hard link shares latest.pt's bytes; replacing latest later keeps this inode
                os.link(latest, tmp)
            except OSError:
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    fsync_path(tmp)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    raise
            os.replace(tmp, target)
            fsync_path(ckpt_dir)
            for old in list_checkpoints(ckpt_dir)[:-keep]:
                old.unlink(missing_ok=True)
    return latest


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Periodic checkpoints, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.iterdir() if _STEP_RE.match(p.name))


def resolve_checkpoint(run_dir: str | os.PathLike, which: str = "latest") -> Path:
    """``latest``, ``step-00001000`` (with or without .pt), a bare step number, or a file path."""
    run_dir = Path(run_dir)
    direct = Path(which)
    if direct.suffix == ".pt" and direct.is_file():
        return direct
    ckpt_dir = run_dir / "checkpoints"
    if which.isdigit():
        which = step_name(int(which))
    name = which if which.endswith(".pt") else f"{which}.pt"
    path = ckpt_dir / name
    if not path.is_file():
        have = ", ".join(p.stem for p in [*list_checkpoints(ckpt_dir), ckpt_dir / "latest.pt"]
                         if p.exists()) or "none"
        raise SynthmedError(f"{path}: checkpoint not found (available: {have}); "
                            "train first or pass --checkpoint latest|step-XXXXXXXX")
    return path


def _verify_crc(path: Path) -> None:
    """Check every member of the checkpoint's zip against its stored CRC-32 (torch.load does
    not: a bit-flipped checkpoint loaded silently and generated different images). About 1 s per
    GB; a file that is not a zip is left to torch.load's own error."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # not a zip (or unreadable): torch.load below says so in one line
    except Exception as e:  # zlib errors on corrupt compressed members
        bad = f"? ({type(e).__name__})"
    if bad is not None:
        raise SynthmedError(f"{path}: checkpoint is corrupt (member {bad} fails its CRC check: "
                            "damaged on disk or in transfer); copy it again, or use another "
                            "one from checkpoints/")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Load safely (no arbitrary code): ``torch.load(..., weights_only=True)``."""
    path = Path(path)
    _verify_crc(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise SynthmedError(f"{path}: checkpoint not found") from None
    except Exception as e:  # corrupt, truncated or not a synthmed checkpoint
        raise SynthmedError(f"{path}: cannot load checkpoint ({type(e).__name__}); "
                            "use another one from checkpoints/ or retrain") from None
    if not isinstance(state, dict) or "config" not in state or "step" not in state:
        raise SynthmedError(f"{path}: not a synthmed checkpoint")
    fmt = int(state.get("checkpoint_format", 1))  # format 1 (GAN-only trainer) has no key
    if fmt > CHECKPOINT_FORMAT:
        raise SynthmedError(
            f"{path}: checkpoint format {fmt} (written by synthmed "
            f"{state.get('synthmed_version', '?')}) is newer than this synthmed reads "
            f"(format {CHECKPOINT_FORMAT}); upgrade synthmed")
    if fmt == 1 and "generator" not in state:
        raise SynthmedError(f"{path}: not a synthmed checkpoint (format 1 without a generator)")
    return state


def checkpoint_hash(path: str | os.PathLike) -> str:
    return sha256_file(path)
