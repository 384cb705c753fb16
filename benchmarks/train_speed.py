"""DCGAN training speed: synthmed vs a reference loop written like the canonical PyTorch DCGAN
example, side by side in one script, on the same data (the phantom at 64x64, batch 64).

The reference decodes images from a PNG folder with a DataLoader every step, uses a Sigmoid D
with nn.BCELoss, and logs every step (a host sync per step), exactly as the example does; it has
the same architecture (DCGAN, latent 100, width 64) and optimizer (Adam 2e-4, betas 0.5/0.999).
Each part runs in its own subprocess so peak memory (max RSS) is reported per part. synthmed is
measured twice: float32 (the default) and with train.amp (bf16 autocast, on CPUs with native bf16).

    python benchmarks/train_speed.py            # default: 60 timed steps after 10 warm-up steps
    python benchmarks/train_speed.py --steps 200 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

SIZE, BATCH, NZ, WIDTH = 64, 64, 100, 64


# ---------------------------------------------------------------- reference (the PyTorch example)
class RefG(nn.Module):
    def __init__(self, nc=1):
        super().__init__()
        W = WIDTH
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, W * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(W * 8), nn.ReLU(True),
            nn.ConvTranspose2d(W * 8, W * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W * 4), nn.ReLU(True),
            nn.ConvTranspose2d(W * 4, W * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W * 2), nn.ReLU(True),
            nn.ConvTranspose2d(W * 2, W, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W), nn.ReLU(True),
            nn.ConvTranspose2d(W, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class RefD(nn.Module):
    def __init__(self, nc=1):
        super().__init__()
        W = WIDTH
        self.main = nn.Sequential(
            nn.Conv2d(nc, W, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(W, W * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(W * 2, W * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(W * 4, W * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(W * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(W * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def weights_init(m):
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class PngFolder(torch.utils.data.Dataset):
    """ImageFolder + Resize + ToTensor + Normalize(0.5, 0.5), without torchvision."""

    def __init__(self, root):
        self.files = sorted(Path(root).rglob("*.png"))

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            arr = np.asarray(im.convert("L").resize((SIZE, SIZE)), np.float32) / 255.0
        return (torch.from_numpy(arr)[None] - 0.5) / 0.5, 0


def run_reference(png_dir: str, steps: int, warmup: int, workers: int) -> dict:
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(PngFolder(png_dir), batch_size=BATCH, shuffle=True,
                                         num_workers=workers, drop_last=True)
    netG, netD = RefG(), RefD()
    netG.apply(weights_init), netD.apply(weights_init)
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    done, t0 = 0, None
    while done < steps + warmup:
        for data, _ in loader:
            if done == warmup:
                t0 = time.perf_counter()
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
            print(f"[{done}] Loss_D: {(errD_real + errD_fake).item():.4f} "
                  f"Loss_G: {errG.item():.4f}")  # the example logs (and syncs) every step
            done += 1
            if done >= steps + warmup:
                break
    dt = time.perf_counter() - t0
    return {"img_per_s": steps * BATCH / dt, "seconds": dt}


# ---------------------------------------------------------------- synthmed
def run_synthmed(dataset: str, steps: int, warmup: int, runs: str, amp: bool) -> dict:
    from synthmed.config import load_config
    from synthmed.training import train

    total = steps + warmup
    cfg = load_config(None, [
        f"data.path={dataset}", "model.name=dcgan", f"train.steps={total}",
        f"train.batch_size={BATCH}", f"train.log_every={warmup}",
        f"train.sample_every={10 * total}", f"train.checkpoint_every={10 * total}",
        f"train.amp={str(amp).lower()}", "name=bench",
        "model.ema=false"])  # like for like: the reference has no EMA (the dcgan's default since
    # 7 Dec 2026)
    t0 = time.perf_counter()
    run = train(cfg, runs_dir=runs, progress=False)
    wall = time.perf_counter() - t0
    recs = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "img_per_s" in r]
    timed = recs[1:]  # the first interval is warm-up
    pairs = list(zip(recs, timed, strict=False))
    imgs = sum(r["step"] - p["step"] for p, r in pairs) * BATCH
    secs = sum((r["step"] - p["step"]) * BATCH / r["img_per_s"] for p, r in pairs)
    return {"img_per_s": imgs / secs, "seconds": secs, "wall_incl_setup": wall, "run": str(run)}


def run_generate(run: str, n: int) -> dict:
    from synthmed.sampling import generate

    generate(run, n=64)  # warm-up
    t0 = time.perf_counter()
    generate(run, n=n)
    dt = time.perf_counter() - t0
    return {"img_per_s": n / dt, "seconds": dt, "n": n}


def _child(args) -> None:
    torch.set_num_threads(args.threads)
    if args.part == "reference":
        out = run_reference(args.png, args.steps, args.warmup, args.ref_workers)
    elif args.part == "synthmed":
        out = run_synthmed(args.dataset, args.steps, args.warmup, args.runs, args.amp)
    else:
        out = run_generate(args.run, args.n)
    out["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def _spawn(extra: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True,
                          check=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--n-generate", type=int, default=2000)
    ap.add_argument("--ref-workers", type=int, default=2, help="the example's --workers default")
    ap.add_argument("--part", choices=["reference", "synthmed", "generate"])
    ap.add_argument("--png"), ap.add_argument("--dataset"), ap.add_argument("--runs")
    ap.add_argument("--run"), ap.add_argument("--n", type=int)
    ap.add_argument("--amp", action="store_true", help="(child) synthmed with train.amp=true")
    args = ap.parse_args()
    if args.part:
        return _child(args)

    from synthmed.data.dataset import PreparedDataset
    from synthmed.data.phantom import write_phantom
    from synthmed.training.data import phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        write_phantom(Path(tmp) / "raw", n=600, size=SIZE, seed=0)
        ds: PreparedDataset = phantom_dataset(600, SIZE, 0)
        common = ["--steps", str(args.steps), "--warmup", str(args.warmup),
                  "--threads", str(args.threads), "--ref-workers", str(args.ref_workers)]
        ref = _spawn(["--part", "reference", "--png", f"{tmp}/raw/images", *common])
        ours = _spawn(["--part", "synthmed", "--dataset", str(ds.path), "--runs", f"{tmp}/runs",
                       *common])
        amp = _spawn(["--part", "synthmed", "--dataset", str(ds.path), "--runs", f"{tmp}/runs",
                      "--amp", *common])
        gen = _spawn(["--part", "generate", "--run", ours["run"], "--n", str(args.n_generate),
                      "--threads", str(args.threads)])
    print(f"DCGAN 64x64, batch {BATCH}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"{args.threads} threads, torch {torch.__version__}")
    rows = [("reference (PyTorch DCGAN example)", ref), ("synthmed train (float32)", ours),
            ("synthmed train (train.amp, bf16)", amp), ("synthmed generate (float32)", gen)]
    print(f"{'part':<36}{'img/s':>10}{'peak RSS MiB':>14}")
    for name, r in rows:
        print(f"{name:<36}{r['img_per_s']:>10.1f}{r['max_rss_mib']:>14.0f}")
    print(f"speed-up synthmed / reference: {ours['img_per_s'] / ref['img_per_s']:.2f}x float32, "
          f"{amp['img_per_s'] / ref['img_per_s']:.2f}x bf16 (target >= 1.3x); "
          "generation target >= 500 img/s")


if __name__ == "__main__":
    main()
