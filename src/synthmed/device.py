"""One meaning of a device name, for every command: ``auto`` (the default of ``train``,
``generate``, ``evaluate``, ``utility`` and ``synthmed run``) picks this process's CUDA GPU, then
Apple's MPS, then the CPU, so a GPU run trains, samples and evaluates on the GPU; ``cpu``, ``cuda``,
``cuda:N`` and ``mps`` name one, and a device this machine lacks is one error line. Also the
device-dependent precision choice (bf16 where the hardware has it, else fp16 with a gradient
scaler) and a device synchronisation for honest timings.
"""

from __future__ import annotations

import torch

from synthmed.errors import ConfigError

CHOICES = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str | torch.device, *, key: str = "--device",
                   local_rank: int = 0) -> torch.device:
    """``name`` as a device; ``auto`` and a bare ``cuda`` take GPU ``local_rank`` (mod count).

    ``key`` names the option or config key in the error line (``--device``, ``train.device``).
    """
    if isinstance(name, torch.device):
        dev = name
    elif name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(name)
        except (RuntimeError, TypeError):
            raise ConfigError(f"{key} {name!r}: unknown device; use {CHOICES}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key} {name}: CUDA is not available on this machine; use auto "
                              "or cpu")
        if dev.index is None:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{key} {name}: this machine has {torch.cuda.device_count()} CUDA "
                              "device(s); use cuda:0, auto or cpu")
    elif dev.type == "mps" and not _mps_available():
        raise ConfigError(f"{key} {name}: MPS is not available on this machine; use auto or cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{key} {name}: unsupported device; use {CHOICES}")
    return dev


def native_bf16(device: torch.device) -> bool:
    """bf16 in hardware: CUDA with bf16 support (Ampere and later), or a CPU with
    AVX512-BF16/AMX (oneDNN)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return device.type == "cpu" and bool(check and check())


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype of ``train.amp``: bf16 where native, else fp16 on CUDA (with a
    :func:`grad_scaler`, since fp16 gradients underflow), else bf16 (emulated, slower)."""
    if device.type == "cuda" and not native_bf16(device):
        return torch.float16
    return torch.bfloat16


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    """A gradient scaler when ``amp`` autocasts to fp16 (pre-Ampere GPUs); None otherwise."""
    if amp and amp_dtype(device) == torch.float16:
        return torch.amp.GradScaler(device.type)
    return None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously), so a clock read
    after it times the work itself; nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_RETAINED = False


def retain_freed_memory() -> bool:
    """Keep the memory a training step frees for the next step instead of returning it to the OS.

    glibc hands large blocks (a step's activations and gradients: up to ~17 MB each for a 64 px
    DCGAN at batch 64) back to the kernel when they are freed, so every step page-faults them in
    again: ~29,000 minor faults per DCGAN step on the CPU, and the fresh zeroed pages are cold in
    the cache. Raising the mmap and trim thresholds (what ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` do, but settable after start-up) removes them: about 10% less CPU
    time per step (benchmarks/step_time.py --profile, docs/benchmarks.md). The cost is that the
    process keeps its peak heap. Linux/glibc only; a no-op elsewhere or when the user set either
    variable. Returns whether the thresholds were set.
    """
    import ctypes
    import os
    import sys

    global _RETAINED
    if _RETAINED:
        return True
    if not sys.platform.startswith("linux") or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: leave them alone
            return False
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's maximum
              and libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
              and libc.mallopt(_M_TOP_PAD, 64 * 2**20))
    except (OSError, AttributeError):
        return False
    _RETAINED = bool(ok)
    return _RETAINED
