"""DPM-Solver++ vs DDIM on one trained ddpm checkpoint: relative FD against network evaluations.

The same checkpoint (and the same starting noise: seeds 0..n_k-1 per class) is sampled with each
``SAMPLER:STEPS`` arm; each set (the training split's class mix, ``--n`` images) is scored with
``synthmed evaluate`` against the real test split (domain features, relative FD with its
bootstrap interval) exactly as ``benchmarks/generators.py`` scores its sets. Sampling CPU time is
reported per arm. The issue-20 goal: dpm-solver++ at 20 evaluations within 10 % of DDIM at 200.

Usage (a ddpm run trained on BreastMNIST 32 px, e.g. by benchmarks/generators.py, and its data)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ddpm_samplers.py --run RUN --data DATA \\
        [--arms ddim:20,ddim:200,dpm-solver++:10,dpm-solver++:20] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import score  # noqa: E402


def sample_set(run: Path, data: Path, out: Path, *, sampler: str, steps: int, n: int,
               device: str) -> tuple[Path, float]:
    """``n`` images in the training split's class proportions, seeds 0..n_k-1 per class."""
    from synthmed import generate
    from synthmed.data.dataset import PreparedDataset, from_model_range, write_prepared

    ds = PreparedDataset(data)
    counts = np.bincount(ds.labels[ds.indices("train")], minlength=len(ds.class_names))
    counts = np.maximum(np.round(counts * n / counts.sum()).astype(int), 2)
    t0 = time.process_time()
    images, labels = [], []
    for k, name in enumerate(ds.class_names):
        g = generate(run, seeds=f"0-{counts[k] - 1}", class_name=name, device=device,
                     steps=steps, sampler=sampler)
        images.append(from_model_range(g.images))
        labels.append(np.full(len(g.images), k))
    dt = time.process_time() - t0
    labs = np.concatenate(labels)
    write_prepared(out, images=np.concatenate(images), labels=labs,
                   splits=["train"] * len(labs), class_names=ds.class_names, name=out.name,
                   force=True)
    return out, dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="DPM-Solver++ vs DDIM on one ddpm checkpoint")
    p.add_argument("--run", type=Path, required=True, help="a trained ddpm run directory")
    p.add_argument("--data", type=Path, required=True, help="its prepared dataset (test split)")
    p.add_argument("--arms", default="ddim:20,ddim:200,dpm-solver++:10,dpm-solver++:20")
    p.add_argument("--n", type=int, default=200, help="images per set")
    p.add_argument("--device", default="cpu")
    p.add_argument("--work", type=Path, default=None, help="default: RUN/../samplers")
    a = p.parse_args(argv)
    work = a.work or a.run.parent / "samplers"
    rows = []
    for arm in a.arms.split(","):
        sampler, steps = arm.split(":")
        syn, dt = sample_set(a.run, a.data, work / f"syn-{sampler}-{steps}", sampler=sampler,
                             steps=int(steps), n=a.n, device=a.device)
        m = score(a.data, syn, work / f"eval-{sampler}-{steps}", full=False, device=a.device)
        rows.append({"sampler": sampler, "steps": int(steps), "sample_cpu_s": dt,
                     "relative_fd": m.get("relative_fd"), "fid": m.get("fid"),
                     "fid_ci": [m.get("fid_ci_low"), m.get("fid_ci_high")]})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| sampler | network evaluations | relative FD | FID [95% CI] | sampling CPU s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["fid_ci"]
        ci = f" [{lo:.1f}, {hi:.1f}]" if lo is not None else ""
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['relative_fd']:.2f} | "
                     f"{r['fid']:.1f}{ci} | {r['sample_cpu_s']:.0f} |")
    text = "\n".join(lines)
    (work / "samplers.md").write_text(text + "\n", encoding="utf-8")
    (work / "samplers.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
