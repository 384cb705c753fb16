"""Time per 1,000 training steps, per model and image size, on this machine's CPU.

Each cell runs in its own subprocess (a fresh thread pool): the model's own config
(configs/*_phantom.yaml, cgan_small_data.yaml, lgg_pix2pix.yaml on the phantom's masks) at
``model.image_size`` = SIZE, the training step exactly as ``synthmed train`` takes it (batches,
method.train_step, EMA update) but without sample grids, checkpoints or logging. After one
untimed step (allocation, oneDNN set-up) it times steps until ``--max-steps`` steps or
``--cpu-budget`` CPU-seconds, whichever comes first (at least ``--min-steps``), and reports both
CPU seconds and wall seconds per step. With one thread CPU time is the time the step takes on one
idle core, whatever else the machine runs; wall time is only meaningful on an idle machine.

    python benchmarks/step_time.py --threads 1
    python benchmarks/step_time.py --threads 2 --sizes 64 --models dcgan,cgan

``--profile`` instead breaks one step down into its parts (G forward, D forward, backward,
optimizer, augmentation, EMA, loss bookkeeping, logging, RNG state, checkpoints, grids) and the
start-up (imports, data load, building, first step), for dcgan, cgan, ddpm and vae at their shipped
settings, running the real ``synthmed train`` loop with timers (benchmarks/step_profile.py):

    python benchmarks/step_time.py --profile --profile-steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "dcgan": ("dcgan_phantom.yaml", []),
    "acgan": ("acgan_phantom.yaml", []),
    "cgan": ("cgan_small_data.yaml", []),
    "pix2pix": ("lgg_pix2pix.yaml", ["data.path=phantom"]),
    "ddpm": ("ddpm_phantom.yaml", []),
    "vae": ("vae_phantom.yaml", []),
}


def _cell(model: str, size: int, threads: int, a) -> dict:
    """One (model, size) timing, in this process (called in a fresh subprocess)."""
    import torch

    from synthmed import generators
    from synthmed.config import load_config
    from synthmed.seed import seed_everything
    from synthmed.training.data import BatchStream, draw_batches, load_training_data
    from synthmed.training.distributed import DistInfo
    from synthmed.training.trainer import _build_ema, build_method

    torch.set_num_threads(threads)
    name, extra = CONFIGS[model]
    cfg = load_config(ROOT / "configs" / name, extra + [
        f"model.image_size={size}", f"data.phantom_size={size}", "data.phantom_n=128",
        "data.split=train", "train.device=cpu", f"train.num_threads={threads}"])
    seed_everything(0)
    device, info = torch.device("cpu"), DistInfo()
    data = load_training_data(cfg.data, size, device,
                              masks=generators.needs_masks(model))
    method, _ = build_method(cfg, data, device, info)
    ema = _build_ema(cfg, method)
    stream = BatchStream(len(data.images), cfg.train.batch_size, seed=0)
    host = data.labels.cpu() if data.labelled else None

    def step() -> None:
        losses = method.train_step(draw_batches(data, stream, method.batches_per_step, device,
                                                host))
        if ema is not None:
            ema.update_parameters(method.ema_network())
        for v in losses.values():
            float(v)  # wait for the step to finish

    step()
    c0, w0, n = time.process_time(), time.perf_counter(), 0
    while n < a.max_steps and (n < a.min_steps or time.process_time() - c0 < a.cpu_budget):
        step()
        n += 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"model": model, "size": size, "threads": threads, "steps": n,
            "batch": cfg.train.batch_size, "cpu_s_per_step": cpu / n,
            "wall_s_per_step": wall / n, "load1": os.getloadavg()[0]}


def _fmt_min(s_per_step: float) -> str:
    m = s_per_step * 1000 / 60
    return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"


def _profile(a) -> int:
    """``--profile``: one fresh process per model (benchmarks/step_profile.py), then one table."""
    from step_profile import table

    models = a.models if a.models != ",".join(CONFIGS) else "dcgan,cgan,ddpm,vae"
    results = []
    for model in models.split(","):
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        r = subprocess.run([sys.executable, str(Path(__file__).with_name("step_profile.py")),
                            model, str(a.profile_steps), str(a.threads)], env=env,
                           capture_output=True, text=True)
        if r.returncode:
            print(f"{model}: failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        if a.out:
            with a.out.open("a") as f:
                f.write(json.dumps(results[-1]) + "\n")
    print(f"{a.profile_steps} steps per model, {a.threads} thread(s), process CPU time; "
          "events every k steps charged at 1/k (k from the shipped config)\n")
    print(table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(CONFIGS))
    p.add_argument("--sizes", default="32,64,128")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--min-steps", type=int, default=3)
    p.add_argument("--cpu-budget", type=float, default=12.0, help="CPU-s of timed steps per cell")
    p.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # model:size, subprocess
    p.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    p.add_argument("--profile", action="store_true", help="per-part breakdown of a step")
    p.add_argument("--profile-steps", type=int, default=10, help="steps per --profile run")
    a = p.parse_args(argv)
    if a.profile:
        return _profile(a)
    if a.cell:
        model, size = a.cell.split(":")
        print(json.dumps(_cell(model, int(size), a.threads, a)), flush=True)
        return 0
    print("| model | size | batch | threads | timed steps | CPU per 1,000 steps "
          "| wall per 1,000 steps | load |\n|---|---|---|---|---|---|---|---|", flush=True)
    for model in a.models.split(","):
        for size in (int(s) for s in a.sizes.split(",")):
            env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
            cmd = [sys.executable, __file__, "--cell", f"{model}:{size}", "--threads",
                   str(a.threads), "--max-steps", str(a.max_steps), "--min-steps",
                   str(a.min_steps), "--cpu-budget", str(a.cpu_budget)]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode:
                last = (r.stderr.strip().splitlines() or ["?"])[-1]
                print(f"| {model} | {size} | | {a.threads} | failed: {last} | | | |", flush=True)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            if a.out:
                with a.out.open("a") as f:
                    f.write(json.dumps(res) + "\n")
            print(f"| {model} | {size} | {res['batch']} | {a.threads} | {res['steps']} "
                  f"| {_fmt_min(res['cpu_s_per_step'])} | {_fmt_min(res['wall_s_per_step'])} "
                  f"| {res['load1']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
