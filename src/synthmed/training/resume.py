"""Resuming a run: which config, restoring the state (also on a new number of processes), and
one process at a time per run directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.config import (
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    key_roles,
    load_config,
)
from synthmed.errors import ConfigError, SynthmedError
from synthmed.seed import seed_everything, set_rng_state
from synthmed.training import distributed as ddp
from synthmed.training.checkpoint import load_checkpoint, resolve_checkpoint
from synthmed.training.data import BatchStream
from synthmed.training.method import EMA_KEY, TrainingMethod

#: Roles of the keys a resumed run may change: they do not change the weights trained so far
#: (how to run, what to generate, how far to train). Derived from each key's role (ROLES).
RESUME_MAY_CHANGE = ("resumable", "generation", "runtime", "evaluation", "utility")


def resumable_keys(cfg: ExperimentConfig) -> list[str]:
    """The leaf keys of ``cfg`` a resumed training run may change (by their role)."""
    return sorted(k for k, r in key_roles(cfg).items() if r in RESUME_MAY_CHANGE)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def resolve_config(config, overrides, resume) -> tuple[ExperimentConfig, dict | None]:
    """The config to train with and, when resuming, the checkpoint state.

    Resuming continues the run's saved config; a CONFIG given as well must describe the same
    experiment: it may differ only in keys whose role is in :data:`RESUME_MAY_CHANGE` (e.g.
    more ``train.steps``). Fewer ``train.steps`` than the checkpoint's step is refused.
    """
    if resume is None:
        if isinstance(config, ExperimentConfig):
            data = apply_overrides(config.model_dump(mode="json"), overrides)
            return config_from_dict(data), None
        return load_config(config, overrides), None
    state = load_checkpoint(resolve_checkpoint(resume, "latest"))
    source = f"{resume} (resumed config)"
    saved = config_from_dict(dict(state["config"]), source=source, saved=True)
    if config is None:
        cfg = config_from_dict(apply_overrides(saved.model_dump(mode="json"), overrides),
                               source=source, overrides=overrides)
    elif isinstance(config, ExperimentConfig):
        cfg = config_from_dict(apply_overrides(config.model_dump(mode="json"), overrides))
    else:
        cfg = load_config(config, overrides)
    a, b = _flatten(saved.model_dump(mode="json")), _flatten(cfg.model_dump(mode="json"))
    may = set(resumable_keys(saved)) | set(resumable_keys(cfg))
    differ = sorted(k for k in a.keys() | b.keys()
                    if a.get(k) != b.get(k) and k not in may and k != "name")
    if differ:
        raise ConfigError(
            f"{differ[0]}: differs from the run being resumed ({resume}); resume continues the "
            "same experiment, so only train.steps and keys that say how to run or what to "
            "generate may change (start a new run to change the rest)")
    check_steps(cfg.train.steps, int(state["step"]), resume)
    return cfg.model_copy(update={"name": saved.name}), state


def check_steps(steps: int, done: int, where) -> None:
    """``train.steps`` below the steps a run already trained: one line (a new run, or a value
    >= the done steps; weights are never rolled back)."""
    if steps < done:
        raise ConfigError(f"train.steps: {steps:,} is below the {done:,} steps {where} already "
                          f"trained; set train.steps >= {done:,} to continue it, or start a new "
                          "run (another --run-dir) to train fewer steps")


def saved_world_size(state: dict[str, Any]) -> int:
    """Processes that wrote ``state`` (format 1 has no key: the length of its per-rank RNGs)."""
    return int(state.get("world_size") or len(state.get("rng_per_rank") or []) or 1)


def derived_seed(seed: int, rank: int, step: int) -> int:
    """A seed for rank ``rank`` resuming at ``step``: distinct per rank, fixed by the three."""
    return int(np.random.SeedSequence([int(seed) % 2**63, int(rank), int(step)])
               .generate_state(1, np.uint64)[0] % 2**63)


def restore(method: TrainingMethod, ema, stream: BatchStream, state: dict[str, Any],
            info: ddp.DistInfo, seed: int) -> tuple[int, str | None]:
    """Load ``state``; return (step, a note for the log when the number of processes changed).

    Same number of processes: every rank gets its own saved RNG streams and per-rank method
    state, so the run continues bit-exactly (on CPU). A different number: the saved per-rank
    streams do not map onto the new ranks, so each rank's streams are derived from
    (``train.seed``, rank, step) (distinct per rank, reproducible), the data order restarts at
    the next epoch of the new sharding, and per-rank method state starts afresh.
    """
    method.load_state_dict(state)
    if ema is not None and state.get(EMA_KEY) is not None:
        ema.load_state_dict(state[EMA_KEY])
    step = int(state["step"])
    saved = saved_world_size(state)
    if saved == info.world_size:
        stream.load_state_dict(state["stream"])
        per_rank = state.get("rng_per_rank") or []
        set_rng_state(per_rank[info.rank] if len(per_rank) == info.world_size else state["rng"])
        method_rank = state.get("method_per_rank") or []
        if len(method_rank) == info.world_size:
            method.load_rank_state(method_rank[info.rank])
        return step, None
    seed_everything(derived_seed(seed, info.rank, step))
    stream.load_state_dict({"epoch": int(state["stream"]["epoch"]) + 1, "offset": 0})
    method.load_rank_state(None)
    return step, (f"resumed with {info.world_size} process(es) where the checkpoint had {saved}: "
                  "noise streams derived from (seed, rank, step), data order from the next epoch")


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, info: ddp.DistInfo):
    """Hold an exclusive lock on ``run_dir/.lock`` (rank 0) while training; a second ``train``
    of the same run refuses at once instead of writing duplicate metrics and checkpoints.

    Every rank learns rank 0's outcome, so a refusal stops all of them. Where ``fcntl`` is
    missing (Windows) no lock is taken.
    """
    fd, error = None, None
    if info.is_main:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        if fcntl is not None:
            path = Path(run_dir) / ".lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:
                os.close(fd)
                fd = None
                error = (f"{run_dir}: another synthmed train is using this run (lock {path}); "
                         "wait for it to finish or stop it, then resume")
    error = ddp.broadcast_object(error, info)
    if error:
        raise SynthmedError(error)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
