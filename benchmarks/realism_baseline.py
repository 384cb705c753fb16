"""The realism judge's baseline: what synthmed's generators make today, scored by ``evaluate``.

1. The quick start as shipped (``configs/quickstart.yaml``: cgan, 1,000 steps on the 32 px
   phantom), run through ``synthmed run`` with the stages import, train, generate, evaluate.
2. cgan, ddpm and vae on BreastMNIST at 32 px (the settings of ``benchmarks/generators.py``),
   each trained for ``--minutes`` of process CPU time (one segment), then a class-matched set (the
   training split's class counts) scored against the real test split with every metric.

Prints one Markdown table (relative FD, precision/density, recall/coverage, MS-SSIM, the C2ST
AUC with its interval, floor and permutation p, spectral distance and grid scores, verdict) and
keeps each set's most / least real-looking grids under ``WORK/<name>/`` (``most_real.png``,
``least_real.png``, ``spectrum.png``). The table in docs/benchmarks.md came from::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/realism_baseline.py --minutes 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import GENERATORS, class_matched, train_for  # noqa: E402
from utility_breastmnist import SHARED, import_real  # noqa: E402


def quickstart(work: Path, threads: int) -> tuple[dict, str]:
    run_dir = work / "quickstart-run"
    cmd = [sys.executable, "-m", "synthmed", "run", str(ROOT / "configs" / "quickstart.yaml"),
           "--run-dir", str(run_dir), "--set", "pipeline.stages=[import,train,generate,evaluate]",
           "--set", f"train.num_threads={threads}", "--no-progress"]
    subprocess.run(cmd, check=True, cwd=work)
    found = sorted(run_dir.rglob("metrics.json"))
    m = json.loads(found[-1].read_text(encoding="utf-8"))
    return m, f"1,000 steps as shipped ({str(found[-1].parent)})"


def breast(name: str, data: Path, work: Path, minutes: float, threads: int,
           ddim_steps: int) -> tuple[dict, str]:
    from synthmed.metrics.evaluate import evaluate
    from synthmed.training.checkpoint import load_checkpoint

    base = [f"name=judge-{name}", f"data.path={data}", "data.split=train", "model.image_size=32",
            "train.batch_size=64", "train.steps=100000000", "train.sample_every=100000000",
            "train.checkpoint_every=100000000", "train.log_every=10", "train.seed=0",
            f"train.num_threads={threads}", "train.device=cpu", *GENERATORS[name]]
    run, dt = train_for(minutes, None, base, work / "runs")
    step = int(load_checkpoint(run / "checkpoints" / "latest.pt")["step"])
    syn, _ = class_matched(run, data, work / f"syn-{name}", device="cpu",
                           steps=ddim_steps if name == "ddpm" else None)
    m = evaluate(f"{data}:test", f"{syn}:train", train=f"{data}:train", out=work / name,
                 cache_dir=work / "cache", n_bootstrap=20)
    extra = f", {ddim_steps} DDIM steps" if name == "ddpm" else ""
    return m, f"{dt / 60:.1f} CPU min, {step} steps{extra}"


def _f(v, fmt="{:.2f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "n/a"


def row(label: str, budget: str, m: dict) -> str:
    r, s, v = m.get("realism") or {}, m.get("spectral") or {}, m.get("verdict") or {}
    floor = (r.get("floor") or {}).get("auc")
    c2 = (f"{_f(r.get('auc'), '{:.3f}')} [{_f(r.get('auc_ci_low'))}, "
          f"{_f(r.get('auc_ci_high'))}] ({_f(floor)}), p {_f(r.get('p_value'), '{:.3f}')}")
    sp = (f"{_f(s.get('distance'), '{:.3f}')} ({_f(s.get('distance_floor'), '{:.3f}')})")
    grid = " / ".join(
        f"{_f(10 ** s[k])}x ({_f(10 ** -s[f'{k}_real_range'])}-"
        f"{_f(10 ** s[f'{k}_real_range'])}x){' **flagged**' if s.get(f'{k}_flagged') else ''}"
        for k in ("checkerboard", "half_nyquist")) if s else "n/a"
    verdict = " / ".join((v.get(k) or {}).get("rating", "n/a")
                         for k in ("fidelity", "diversity", "privacy"))
    return (f"| {label} | {budget} | {_f(m.get('relative_fd'))} | {_f(m.get('precision'))} / "
            f"{_f(m.get('density'))} | {_f(m.get('recall'))} / {_f(m.get('coverage'))} | "
            f"{_f(m.get('ms_ssim'), '{:.3f}')} ({_f(m.get('ms_ssim_real'), '{:.3f}')}) | {c2} | "
            f"{sp} | {grid} | {verdict} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=2.0, help="CPU minutes per BreastMNIST model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--generators", default="cgan,ddpm,vae")
    p.add_argument("--skip-quickstart", action="store_true")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-realism")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.process_time()
    lines = ["| set | budget | relative FD | precision / density | recall / coverage | MS-SSIM "
             "(real) | C2ST AUC [95 % CI] (real-vs-real), p | spectral distance (floor) | "
             "power at Nyquist / half-Nyquist vs real (real range) | verdict fidelity / "
             "diversity / privacy |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    if not a.skip_quickstart:
        m, budget = quickstart(a.work, a.threads)
        lines.append(row("quickstart cgan (phantom 32 px)", budget, m))
        print(lines[-1], flush=True)
    data = import_real(SHARED / "breastmnist.npz", a.work / "data", None)
    for name in a.generators.split(","):
        m, budget = breast(name, data, a.work, a.minutes, a.threads, a.ddim_steps)
        lines.append(row(f"BreastMNIST {name} (32 px)", budget, m))
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    (a.work / "realism_baseline.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"total {time.process_time() - t0:.0f} s CPU in this process (the quick start ran in a "
          f"child process), {a.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
