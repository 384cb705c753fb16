"""Multi-process training: ``torchrun --nproc_per_node=N -m synthmed train CONFIG``.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; we then use DistributedDataParallel (nccl on GPU, gloo
on CPU), shard the data with DistributedSampler, and let rank 0 alone write files.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from synthmed.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    sync_batchnorm: bool = False  # convert BatchNorm to SyncBatchNorm when wrapping for DDP

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``train.device``: ``auto`` picks cuda (this process's local GPU), then mps, then cpu
    (:func:`synthmed.device.resolve_device`, the one meaning every command shares)."""
    from synthmed.device import resolve_device as resolve

    return resolve(name, key="train.device", local_rank=local_rank)


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device_name)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, info.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info, device


def resolve_sync_batchnorm(setting: bool | None, info: DistInfo, device: torch.device) -> bool:
    """``train.sync_batchnorm``: default on under DDP on CUDA; torch has no CPU SyncBatchNorm."""
    if not info.enabled:
        return False
    if setting is None:
        return device.type == "cuda"
    if setting and device.type != "cuda":
        raise ConfigError(f"train.sync_batchnorm: SyncBatchNorm needs CUDA devices (torch has no "
                          f"{device.type} kernel); set train.sync_batchnorm=false or train on GPUs")
    return bool(setting)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj, info: DistInfo) -> list | None:
    """Every rank's ``obj`` as a list on rank 0 (None elsewhere); ``[obj]`` when not distributed."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Leave the process group. The DDP-wrapped networks of the finished run often sit in
    reference cycles; collected only at interpreter exit, they outlive the destroyed gloo group and
    its threads can abort the process ("terminate called without an active exception", 1 torchrun
    in ~8 under load in CI). So collect them first, while the group still exists."""
    if info.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, device: torch.device, info: DistInfo, *,
         find_unused_parameters: bool = False) -> torch.nn.Module:
    """``module`` wrapped in DistributedDataParallel when running under torchrun, else itself.

    With ``info.sync_batchnorm`` BatchNorm layers become SyncBatchNorm first (in place, so the
    unwrapped module keeps its parameter names and EMA/checkpoints are unchanged): batch
    statistics over the global batch, so results do not depend on the number of GPUs.
    """
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    if info.sync_batchnorm:
        module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
