"""GPU smoke test and speed sheet: every training method trains a few hundred steps, generates
and is evaluated on one device, and the script prints train img/s, generation img/s, evaluation
seconds and peak memory per method. Under 8 minutes on one GPU at the defaults (the budget is
checked: a method that would start after ``--budget-s`` is skipped and said so).

On CUDA training uses ``train.amp`` (bf16 where the GPU has it, else fp16 with a gradient
scaler), channels_last and the device's own random streams; generation and evaluation run on the
same device (``auto``). ``--device cpu --quick`` runs the same path in about a minute on a CPU
with tiny networks and a handful of steps (what the test suite checks); its numbers mean nothing.

    python benchmarks/gpu_smoke.py                      # auto device, 300 steps per method
    python benchmarks/gpu_smoke.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: method -> (shipped config, overrides that make --quick tiny)
METHODS = {
    "dcgan": ("dcgan_phantom.yaml", ["model.base_width=8", "model.latent_dim=16"]),
    "acgan": ("acgan_phantom.yaml", ["model.base_width=8", "model.latent_dim=16"]),
    "cgan": ("cgan_small_data.yaml", ["model.base_width=8", "model.latent_dim=16"]),
    "ddpm": ("ddpm_phantom.yaml", ["model.channels=[8,16]", "model.diffusion_steps=100",
                                   "model.sample_steps=2"]),
    "ddpm-mask": ("ddpm_phantom.yaml", ["model.channels=[8,16]", "model.diffusion_steps=100",
                                        "model.sample_steps=2"]),
    "vae": ("vae_phantom.yaml", ["model.channels=[8,16]", "model.latent_dim=8"]),
    "pix2pix": ("lgg_pix2pix.yaml", ["model.base_width=4"]),
}
MASK = {"ddpm-mask", "pix2pix"}


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def _sync(device) -> None:
    from synthmed.device import synchronize

    synchronize(device)


def one_method(method: str, device, a, work: Path) -> dict:
    """Train, generate and evaluate one method; returns its row."""
    import torch

    from synthmed.config import load_config
    from synthmed.metrics.evaluate import evaluate
    from synthmed.sampling.pairs import write_pairs
    from synthmed.sampling.writer import write_synthetic
    from synthmed.training import train
    from synthmed.training.data import resolve_dataset

    name, tiny = METHODS[method]
    over = [f"model.name={method}", "data.path=phantom", f"train.steps={a.steps}",
            f"train.device={device}", f"train.log_every={max(1, a.steps // 4)}",
            f"train.sample_every={a.steps}", f"train.checkpoint_every={a.steps}",
            f"train.amp={str(device.type == 'cuda').lower()}", f"name=smoke-{method}"]
    if a.quick:
        over += tiny + ["data.phantom_n=64", "train.batch_size=8"]
    cfg = load_config(ROOT / "configs" / name, over)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    run = train(cfg, runs_dir=work / "runs", progress=False)
    _sync(device)
    train_s = time.perf_counter() - t0
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in recs if "img_per_s" in r][1:]  # the first: warm-up
    row = {"method": method, "size": cfg.model.image_size or cfg.data.phantom_size,
           "batch": cfg.train.batch_size, "steps": a.steps, "train_s": train_s,
           "train_img_s": sum(rates) / len(rates) if rates else None,
           "train_peak_mib": _peak_mib(device)}
    ds = resolve_dataset(cfg.data).path
    out = work / f"synthetic-{method}"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    if method in MASK:
        write_pairs(run, out, masks_from=f"{ds}:train", n=a.n, device=str(device), force=True)
    else:
        write_synthetic(run, out, n=a.n, device=str(device), force=True)
    _sync(device)
    gen_s = time.perf_counter() - t0
    row.update(gen_img_s=a.n / gen_s, gen_peak_mib=_peak_mib(device))
    t0 = time.perf_counter()
    m = evaluate(f"{ds}:test", out, train=f"{ds}:train", out=work / f"eval-{method}",
                 n_bootstrap=a.bootstrap, extractor_epochs=a.extractor_epochs, plots=False,
                 device=str(device), cache_dir=work / "cache")
    row.update(eval_s=time.perf_counter() - t0, relative_fd=m.get("relative_fd"))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--quick", action="store_true", help="tiny networks, 4 steps: a CPU check")
    p.add_argument("--steps", type=int, default=None, help="default 300 (4 with --quick)")
    p.add_argument("--n", type=int, default=None, help="images generated (default 1000; 16)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="start no method after this many seconds (the 8-minute target)")
    p.add_argument("--work", type=Path, default=None, help="keep runs and sets here")
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    a = p.parse_args(argv)
    a.steps = a.steps or (4 if a.quick else 300)
    a.n = a.n or (16 if a.quick else 1000)
    a.bootstrap, a.extractor_epochs = (0, 1) if a.quick else (20, 15)
    import torch

    from synthmed.device import resolve_device

    device = resolve_device(a.device)
    work = a.work or Path(tempfile.mkdtemp(prefix="synthmed-gpu-smoke-"))
    os.environ.setdefault("SYNTHMED_CACHE", str(work / "cache"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device {device} ({name}), torch {torch.__version__}, {a.steps} steps per method, "
          f"{a.n} images generated{' (quick)' if a.quick else ''}", flush=True)
    rows, t_start, failed = [], time.perf_counter(), []
    for method in a.methods.split(","):
        if time.perf_counter() - t_start > a.budget_s:
            print(f"{method}: skipped (past the {a.budget_s:.0f} s budget)", flush=True)
            failed.append(method)
            continue
        try:
            rows.append(one_method(method, device, a, work))
        except Exception as e:  # noqa: BLE001  (a smoke test reports every method)
            print(f"{method}: FAILED: {type(e).__name__}: {e}", flush=True)
            failed.append(method)
            continue
        r = rows[-1]
        rate = f"{r['train_img_s']:.0f}" if r["train_img_s"] else "-"
        print(f"{method}: {r['size']} px, batch {r['batch']}: train {rate} img/s "
              f"({r['train_s']:.1f} s, peak {r['train_peak_mib']:.0f} MiB); generate "
              f"{r['gen_img_s']:.0f} img/s (peak {r['gen_peak_mib']:.0f} MiB); evaluate "
              f"{r['eval_s']:.1f} s", flush=True)
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s; {len(rows)} methods ok, {len(failed)} failed or skipped"
          + (f": {', '.join(failed)}" if failed else ""))
    if a.json:
        a.json.write_text(json.dumps({"device": name, "total_s": total, "rows": rows,
                                      "failed": failed}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
