"""The orchestration behind ``synthmed run`` and ``synthmed.run(config)``."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthmed.config import (
    STAGES,
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    save_config,
)
from synthmed.errors import ConfigError, SynthmedError
from synthmed.fileio import atomic_write_json
from synthmed.pipeline import markers as mk
from synthmed.pipeline.checks import check_dataset, check_run_config
from synthmed.pipeline.stages import STAGE_FUNCS, Context, StageInterrupted, train_stage

RUN_MARKER = "run.json"


class StageError(SynthmedError):
    """A stage failed; earlier stages' outputs and markers are kept."""


def resolve_config(config: ExperimentConfig | str | os.PathLike | dict | None,
                   overrides: list[str] | None = None) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return config_from_dict(apply_overrides(config.model_dump(mode="json"), overrides))
    if isinstance(config, dict):
        return config_from_dict(apply_overrides(json.loads(json.dumps(config)), overrides))
    return load_config(config, overrides)


def _open_run_dir(run_dir: Path) -> None:
    """Create the run directory, or reuse it only when ``synthmed run`` made it."""
    for p in [run_dir.resolve(), *run_dir.resolve().parents]:
        if (p / "dataset.json").is_file():  # was accepted, and the import stage failed later
            raise SynthmedError(f"--run-dir {run_dir}: lies inside the prepared dataset {p}; "
                                "choose a folder outside it")
    if run_dir.exists() and not run_dir.is_dir():
        raise SynthmedError(f"{run_dir}: exists and is not a directory; choose another --run-dir")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / RUN_MARKER).is_file():
        raise SynthmedError(f"{run_dir}: not empty and not a `synthmed run` directory (no "
                            f"{RUN_MARKER}); choose another --run-dir")
    (run_dir / "stages").mkdir(parents=True, exist_ok=True)
    if not (run_dir / RUN_MARKER).is_file():
        atomic_write_json(run_dir / RUN_MARKER, {"kind": "synthmed-run", "created": mk.now()})


@contextlib.contextmanager
def _run_lock(run_dir: Path):
    """Hold an exclusive lock on ``RUN_DIR/.run.lock`` for the whole pipeline: two ``synthmed
    run`` on one run directory both trained, interleaved log.txt and silently replaced the first
    run's results. The operating system releases the lock however the process ends."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = run_dir / ".run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SynthmedError(f"{run_dir}: another synthmed run is using this run directory "
                                f"(lock {path}); wait for it to finish, or choose another "
                                "--run-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def _clear_warnings(run_dir: Path) -> None:
    path = run_dir / RUN_MARKER
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.pop("warnings", None) is not None:
        atomic_write_json(path, info)


def _logger(run_dir: Path, echo: Callable[[str], None] | None) -> Callable[[str], None]:
    def log(message: str) -> None:
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        with open(run_dir / "log.txt", "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")
        if echo:
            echo(message)

    return log


def _run_stage(stage: str, ctx: Context, inputs: dict[str, Any], forced: bool) -> dict[str, Any]:
    if stage == "train":
        path = ctx.run_dir / "stages" / "train.started.json"
        started = json.loads(path.read_text()) if path.is_file() and not forced else {}
        # a run directory from before restart hashes: train_stage checks its checkpoint instead
        old = started.get("restart_hash") or ("legacy" if "inputs_hash" in started else None)
        return train_stage(ctx, old, mk.restart_hash(inputs, ctx.cfg))
    return STAGE_FUNCS[stage](ctx)


def _execute(stage: str, ctx: Context, inputs: dict[str, Any], forced: bool) -> dict[str, Any]:
    """Run one stage; any failure becomes one line naming the stage (traceback in log.txt)."""
    try:
        return _run_stage(stage, ctx, inputs, forced)
    except (StageInterrupted, KeyboardInterrupt):
        raise
    except SynthmedError as e:
        ctx.log(f"stage {stage} failed: {e}")
        raise StageError(f"stage {stage} failed: {e}") from None
    except Exception as e:  # a bug or an environment problem: keep the traceback for the log
        ctx.log(f"stage {stage} failed:\n{traceback.format_exc()}")
        raise StageError(f"stage {stage} failed: {type(e).__name__}: {e} (traceback in "
                         f"{ctx.run_dir / 'log.txt'})") from None


def _warn_stale(ctx: Context, stage: str, changed: list[str]) -> str:
    """A stage left out of pipeline.stages whose inputs changed since it ran: its old outputs are
    used, so say so (log, console, and run.json's ``warnings`` for the report)."""
    what = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    line = (f"warning: stage {stage} is not in pipeline.stages but its inputs changed since it "
            f"ran ({what}); later stages use its old outputs (add {stage} to pipeline.stages "
            "to bring it up to date)")
    ctx.log(line)
    path = ctx.run_dir / RUN_MARKER
    info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    info.setdefault("warnings", []).append(line)
    atomic_write_json(path, info)
    return line


def run(config: ExperimentConfig | str | os.PathLike | dict | None = None, *,
        overrides: list[str] | None = None, run_dir: str | os.PathLike | None = None,
        from_stage: str | None = None, progress: bool = True,
        echo: Callable[[str], None] | None = None) -> Path:
    """Run every stage of ``config``'s pipeline in ``run_dir`` (default ``runs/<name>``) and
    return the run directory. Finished stages whose inputs are unchanged are skipped; an
    interrupted training resumes from its checkpoint; ``from_stage`` re-runs that stage and every
    later one."""
    cfg = resolve_config(config, overrides)
    check_run_config(cfg)
    if from_stage is not None and from_stage not in STAGES:
        raise ConfigError(f"--from {from_stage!r}: choose one of {', '.join(STAGES)}")
    rd = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    _open_run_dir(rd)
    with _run_lock(rd):
        return _run_locked(cfg, rd, from_stage, progress, echo)


def _run_locked(cfg: ExperimentConfig, rd: Path, from_stage: str | None, progress: bool,
                echo: Callable[[str], None] | None) -> Path:
    save_config(cfg, rd / "config.yaml")
    log = _logger(rd, echo)
    ctx = Context(run_dir=rd, cfg=cfg, progress=progress, log=log)
    tokens: dict[str, str] = {}
    forced = mk.stage_index(from_stage) if from_stage else len(STAGES)
    t_all, checked, stale = time.perf_counter(), False, []
    _clear_warnings(rd)
    log(f"synthmed run {cfg.name} in {rd}: stages {', '.join(cfg.pipeline.stages)}")
    for i, stage in enumerate(STAGES):
        marker = mk.read_marker(rd, stage)
        inputs = mk.stage_inputs(stage, cfg, tokens)
        if stage not in cfg.pipeline.stages:
            if marker:  # keep what an earlier run made, for the stages that read it
                tokens[stage], ctx.outputs[stage] = marker["token"], marker["outputs"]
                if marker.get("inputs_hash") != mk.inputs_hash(inputs):
                    stale.append(_warn_stale(ctx, stage,
                                             mk.changed_keys(marker.get("inputs"), inputs)))
            continue
        if stage == "report" and stale:  # the report names them: a new warning re-makes it
            inputs["stale"] = stale
        if i < forced and marker and marker.get("inputs_hash") == mk.inputs_hash(inputs):
            tokens[stage], ctx.outputs[stage] = marker["token"], marker["outputs"]
            log(f"stage {stage}: up to date (finished {marker['finished']}), skipped")
            continue
        if stage != "import" and not checked:
            check_dataset(ctx)
            checked = True
        mk.clear_marker(rd, stage)
        log(f"stage {stage}: running")
        started, t0 = mk.now(), time.perf_counter()
        outputs = _execute(stage, ctx, inputs, i >= forced)
        marker = mk.write_marker(rd, stage, inputs, started=started,
                                 seconds=time.perf_counter() - t0, outputs=outputs)
        tokens[stage], ctx.outputs[stage] = marker["token"], outputs
        log(f"stage {stage}: done in {marker['seconds']:.1f} s")
    log(f"run finished in {time.perf_counter() - t_all:.1f} s")
    return rd
