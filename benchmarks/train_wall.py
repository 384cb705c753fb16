"""Whole-process DCGAN training time: ``synthmed train`` vs the canonical PyTorch DCGAN example,
side by side, alternating, as two fresh processes each (imports, data load, training, the final
checkpoint all counted): the measure of issue 22.

Both train the DCGAN of the example (64x64, latent 100, width 64, gray, Adam 2e-4, betas
0.5/0.999) for ``--steps`` steps of batch 64 on the same 640 phantom images, float32, on the CPU,
with ``--threads`` threads. The reference is written like pytorch/examples ``dcgan/main.py``:
images decoded from a PNG folder by a DataLoader with 2 workers, Sigmoid D with ``nn.BCELoss``, a
log line (two host syncs) every step, a grid of real and fake samples every 100 iterations and
G/D weights saved after every epoch. synthmed runs ``python -m synthmed train
configs/dcgan_phantom.yaml`` on the same images (a prepared phantom dataset, ``data.split=all``),
with its default logging, final sample grid and final checkpoint.

The machine is shared, so each pair runs ``--repeats`` times, alternating which goes first, and
the script reports the median and range of the per-pair ratio reference / synthmed, in wall time
and in process CPU time (user + system of the process and its DataLoader workers). With one
thread the CPU time is the work each side does, whatever else the machine runs; the wall time is
what a user waits for on an idle machine.

    python benchmarks/train_wall.py                      # 25 steps, 1 thread, 3 pairs
    python benchmarks/train_wall.py --repeats 5 --threads 2
    python benchmarks/train_wall.py --baseline-src /tmp/old/src   # also an older synthmed

With ``--baseline-src`` each round also runs ``synthmed train`` from another source tree (e.g.
``git archive main src | tar -x -C /tmp/old``), so before and after are measured in one script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 640


def reference(png_dir: str, steps: int, out: str, workers: int) -> None:
    """The example's loop (run in its own process: ``--part reference``)."""
    import numpy as np
    import torch
    from PIL import Image
    from torch import nn
    from train_speed import BATCH, NZ, PngFolder, RefD, RefG, weights_init

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(PngFolder(png_dir), batch_size=BATCH, shuffle=True,
                                         num_workers=workers, drop_last=True)
    netG, netD = RefG(), RefD()
    netG.apply(weights_init), netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(BATCH, NZ, 1, 1)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def save_grid(x: torch.Tensor, path: str) -> None:  # vutils.save_image(normalize=True)
        x = ((x - x.min()) / (x.max() - x.min() + 1e-5) * 255).byte()[:, 0].numpy()
        rows = [np.concatenate(list(x[r * 8:(r + 1) * 8]), axis=1) for r in range(len(x) // 8)]
        Image.fromarray(np.concatenate(rows, axis=0)).save(path)

    done, epoch = 0, 0
    while done < steps:
        for i, (data, _) in enumerate(loader):
            netD.zero_grad()
            real = data
            b = real.size(0)
            label = torch.full((b,), 1.0)
            errD_real = criterion(netD(real), label)
            errD_real.backward()
            fake = netG(torch.randn(b, NZ, 1, 1))
            label.fill_(0.0)
            errD_fake = criterion(netD(fake.detach()), label)
            errD_fake.backward()
            optD.step()
            netG.zero_grad()
            label.fill_(1.0)
            errG = criterion(netD(fake), label)
            errG.backward()
            optG.step()
            print(f"[{epoch}][{i}/{len(loader)}] Loss_D: {(errD_real + errD_fake).item():.4f} "
                  f"Loss_G: {errG.item():.4f}")
            if i % 100 == 0:
                save_grid(real, f"{out}/real_samples.png")
                with torch.no_grad():
                    save_grid(netG(fixed_noise).detach(), f"{out}/fake_samples_epoch_{epoch}.png")
            done += 1
            if done >= steps:
                break
        torch.save(netG.state_dict(), f"{out}/netG_epoch_{epoch}.pth")
        torch.save(netD.state_dict(), f"{out}/netD_epoch_{epoch}.pth")
        epoch += 1


def _timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall s, CPU s of the process and its reaped children) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{cmd[1:4]} failed:\n{r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}x (range {min(xs):.2f}-{max(xs):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ref-workers", type=int, default=2, help="the example's --workers default")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra --set for synthmed (e.g. train.amp=true)")
    p.add_argument("--baseline-src", default=None,
                   help="also time synthmed from this src/ directory (before/after)")
    p.add_argument("--part", choices=["reference"], help=argparse.SUPPRESS)
    p.add_argument("--png", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.part == "reference":
        import torch

        torch.set_num_threads(a.threads)
        reference(a.png, a.steps, a.out, a.ref_workers)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
               "SYNTHMED_CACHE": f"{tmp}/cache"}
        os.environ["SYNTHMED_CACHE"] = env["SYNTHMED_CACHE"]
        from synthmed.data.phantom import write_phantom
        from synthmed.training.data import phantom_dataset

        write_phantom(Path(tmp) / "raw", n=N_IMAGES, size=64, seed=0)
        phantom_dataset(N_IMAGES, 64, 0)  # the prepared copy synthmed reads (not timed)
        ref_cmd = [sys.executable, __file__, "--part", "reference", "--png", f"{tmp}/raw/images",
                   "--out", tmp, "--steps", str(a.steps), "--threads", str(a.threads),
                   "--ref-workers", str(a.ref_workers)]
        ours_cmd = [sys.executable, "-m", "synthmed", "train", str(ROOT / "configs" /
                    "dcgan_phantom.yaml"), "--runs-dir", f"{tmp}/runs", "--no-progress"]
        for s in [f"data.phantom_n={N_IMAGES}", "data.split=all", f"train.steps={a.steps}",
                  "train.device=cpu", f"train.num_threads={a.threads}", *a.sets]:
            ours_cmd += ["--set", s]
        rows = []
        base_env = {**env, "PYTHONPATH": a.baseline_src or ""}
        for k in range(a.repeats):
            order = [("ref", ref_cmd, env), ("ours", ours_cmd, env)]
            if a.baseline_src:
                order.append(("base", ours_cmd, base_env))
            order = order[k % len(order):] + order[:k % len(order)]  # rotate who goes first
            res = {name: _timed(cmd, e) for name, cmd, e in order}
            rows.append(res)
            print(json.dumps({"round": k, "order": [o[0] for o in order],
                              **{f"{n}_{m}": round(res[n][i], 2) for n in res
                                 for i, m in enumerate(("wall", "cpu"))},
                              "load1": os.getloadavg()[0]}), flush=True)
    wall = [r["ref"][0] / r["ours"][0] for r in rows]
    cpu = [r["ref"][1] / r["ours"][1] for r in rows]
    med = {k: statistics.median(r[who][i] for r in rows)
           for k, who, i in [("rw", "ref", 0), ("rc", "ref", 1), ("ow", "ours", 0),
                             ("oc", "ours", 1)]}
    print(f"DCGAN 64x64, batch 64, {a.steps} steps, {N_IMAGES} images, float32, {a.threads} "
          f"thread(s), {a.repeats} alternating pairs")
    print(f"reference: wall {med['rw']:.1f} s, CPU {med['rc']:.1f} s (medians)")
    print(f"synthmed:  wall {med['ow']:.1f} s, CPU {med['oc']:.1f} s (medians)")
    print(f"speed-up reference/synthmed: wall {_summary(wall)}, CPU {_summary(cpu)} "
          "(target >= 1.3x)")
    if a.baseline_src:
        bw = [r["ref"][0] / r["base"][0] for r in rows]
        bc = [r["ref"][1] / r["base"][1] for r in rows]
        print(f"baseline {a.baseline_src}: wall {statistics.median(r['base'][0] for r in rows):.1f}"
              f" s, CPU {statistics.median(r['base'][1] for r in rows):.1f} s; speed-up "
              f"reference/baseline: wall {_summary(bw)}, CPU {_summary(bc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
