"""The ``domain`` feature extractor: a small CNN trained on the user's own real training images.

ImageNet-trained Inception features are a poor judge of grayscale medical images (Kynkäänniemi et
al., 2023, "The role of ImageNet classes in Fréchet Inception Distance"); a network trained on the
domain itself sees speckle, texture and lesion shape. It is supervised on the labels when the split
has two or more classes (class-balanced cross-entropy: its posteriors then give a *domain*
Inception Score), else self-supervised with SimCLR's augment-and-contrast NT-Xent loss (Chen et
al., 2020). Its global-average-pooled penultimate layer plays the role of Inception's pool3 for
FID/KID/PRDC. Small on purpose: ~500 64x64 images train in seconds on a laptop CPU, fully offline,
deterministic per seed.

The file is a ``torch.save`` dict: ``state_dict``, ``config`` (architecture, training settings and
the dataset's content hash and split) and ``sha256`` of the weights; loaded with weights_only=True.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthmed import __version__
from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_save
from synthmed.metrics.cache import cache_key, extractor_path
from synthmed.metrics.features import FeatureExtractor, prepare_images, state_dict_sha256
from synthmed.seed import seed_everything

FORMAT = "synthmed-domain-extractor"
TRAINING_VERSION = 1  # bump when training changes, so cached extractors are retrained
MAX_SIDE = 64


class DomainFeatureNet(nn.Module):
    """Strided conv stages -> global average pool (features) -> linear classifier / projection."""

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 0,
                 channels: tuple[int, ...] = (16, 32, 64, 128), proj_dim: int = 0) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("DomainFeatureNet supports spatial_dims=2 only")
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            prev = c
        layers += [nn.Conv2d(prev, prev, 3, padding=1, bias=False), nn.BatchNorm2d(prev),
                   nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.feature_dim = prev
        self.head = nn.Linear(prev, out_channels) if out_channels > 0 else None
        self.proj = (nn.Sequential(nn.Linear(prev, prev), nn.ReLU(inplace=True),
                                   nn.Linear(prev, proj_dim)) if proj_dim > 0 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_channels, H, W) in [-1, 1] -> features (B, F) [, logits (B, out_channels)]."""
        f = self.body(x)
        return (f, self.head(f)) if self.head is not None else f


def augment(x: torch.Tensor, gen: torch.Generator, *, strong: bool) -> torch.Tensor:
    """Random flip, affine (zoom/rotate/shift), contrast/brightness and noise on [-1, 1] images.

    ``strong`` is SimCLR's "crop and distort" regime; the weak one only regularizes supervision.
    """
    n = len(x)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    scale = u(0.6, 1.0) if strong else u(0.9, 1.1)
    angle = u(-15, 15) * (math.pi / 180) if strong else u(-5, 5) * (math.pi / 180)
    shift = 0.2 if strong else 0.06
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([flip * cos, -sin, u(-shift, shift)], 1),
                         torch.stack([flip * sin, cos, u(-shift, shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = (u(0.7, 1.3) if strong else u(0.9, 1.1)).view(n, 1, 1, 1)
    bright = (u(-0.2, 0.2) if strong else u(-0.05, 0.05)).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * (0.05 if strong else 0.02)
    return (x * contrast + bright + noise).clamp(-1.0, 1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's normalized-temperature cross-entropy: each view must find its partner."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def _default_size(h: int, w: int) -> list[int]:
    f = min(1.0, MAX_SIDE / max(h, w))
    return [max(8, round(h * f)), max(8, round(w * f))]


def _training_config(data, split: str, *, epochs: int, seed: int, mode: str,
                     image_size: int | None, batch_size: int, lr: float,
                     channels: tuple[int, ...]) -> dict[str, Any]:
    labels = data.labels[data.indices(split)]
    present = sorted(set(labels[labels >= 0].tolist()))
    if mode == "auto":
        mode = "supervised" if len(present) >= 2 else "simclr"
    if mode == "supervised" and len(present) < 2:
        raise SynthmedError(f"{data.path}:{split}: supervised extractor training needs two or more "
                            "labelled classes; use mode 'simclr'")
    h, w = data.size
    return {
        "mode": mode, "in_channels": data.channels, "n_classes": data.n_classes,
        "class_names": data.class_names, "channels": list(channels),
        "image_size": [image_size, image_size] if image_size else _default_size(h, w),
        "proj_dim": 64 if mode == "simclr" else 0, "epochs": int(epochs), "seed": int(seed),
        "batch_size": int(batch_size), "lr": float(lr), "training_version": TRAINING_VERSION,
        "dataset": {"content_hash": data.content_hash, "split": split},
    }


def build_domain_net(config: dict[str, Any]) -> DomainFeatureNet:
    n_out = config["n_classes"] if config["mode"] == "supervised" else 0
    return DomainFeatureNet(in_channels=config["in_channels"], out_channels=n_out,
                            channels=tuple(config["channels"]), proj_dim=config["proj_dim"])


def _fit(net: DomainFeatureNet, x: torch.Tensor, y: torch.Tensor, cfg: dict[str, Any],
         gen: torch.Generator) -> dict[str, float]:
    """The training loop (Adam, cosine learning rate); returns the last epoch's loss."""
    supervised = cfg["mode"] == "supervised"
    if supervised:
        keep = y >= 0
        x, y = x[keep], y[keep]
        counts = torch.bincount(y, minlength=cfg["n_classes"]).float()
        weight = torch.where(counts > 0, len(y) / (counts.clamp(min=1) * (counts > 0).sum()), 0.0)
    bs = max(2, min(cfg["batch_size"], len(x)))
    steps_per_epoch = max(1, len(x) // bs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"] * steps_per_epoch)
    net.train()
    loss_sum, correct = 0.0, 0
    for _epoch in range(cfg["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            if supervised:
                feats, logits = net(augment(x[idx], gen, strong=False))
                loss = F.cross_entropy(logits, y[idx], weight=weight)
                correct += int((logits.argmax(1) == y[idx]).sum())
            else:
                f1 = net(augment(x[idx], gen, strong=True))
                f2 = net(augment(x[idx], gen, strong=True))
                loss = nt_xent(net.proj(f1), net.proj(f2))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
    net.eval()
    out = {"final_loss": loss_sum / max(seen, 1)}
    if supervised:
        out["final_train_accuracy"] = correct / max(seen, 1)
    return out


def train_domain_extractor(dataset_dir: str | os.PathLike, split: str = "train", *,
                           epochs: int = 15, seed: int = 0, out: str | os.PathLike | None = None,
                           mode: str = "auto", image_size: int | None = None,
                           batch_size: int = 64, lr: float = 2e-3,
                           channels: tuple[int, ...] = (16, 32, 64, 128),
                           cache_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Train the domain extractor on ``split`` of a prepared dataset and save it; returns the file.

    Without ``out`` the file goes to the cache under a key of (dataset content hash, split,
    training config) and an existing one is reused (unless ``force``); with ``out`` a cached
    extractor for the same key is copied instead of retrained.
    """
    from synthmed.data.dataset import PreparedDataset

    if mode not in ("auto", "supervised", "simclr"):
        raise SynthmedError(f"mode {mode!r}: choose one of auto, supervised, simclr")
    if epochs < 1:
        raise SynthmedError(f"epochs {epochs}: must be at least 1")
    data = PreparedDataset(dataset_dir)
    idx = data.indices(split)
    if len(idx) < 2:
        raise SynthmedError(f"{data.path}:{split}: {len(idx)} images; the feature network needs at "
                            "least 2 (choose another split)")
    cfg = _training_config(data, split, epochs=epochs, seed=seed, mode=mode,
                           image_size=image_size, batch_size=batch_size, lr=lr, channels=channels)
    cached = extractor_path(cache_key(cfg), cache_dir)
    target = Path(out) if out is not None else cached
    if cached.is_file() and not force:
        try:
            payload = _read(cached)
            if target != cached:
                atomic_save(target, lambda tmp: torch.save(payload, tmp))
            return target
        except SynthmedError:
            pass  # corrupt cache entry: retrain below
    gen = seed_everything(seed)
    x = prepare_images(np.asarray(data.images[idx]), size=tuple(cfg["image_size"]),
                       channels=cfg["in_channels"], input_range="model")
    y = torch.from_numpy(data.labels[idx]).long()
    net = build_domain_net(cfg)
    cfg["train_log"] = _fit(net, x, y, cfg, gen)
    cfg["n_train"] = len(idx)
    cfg["synthmed_version"] = __version__
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    payload = {"format": FORMAT, "state_dict": state, "config": cfg,
               "sha256": state_dict_sha256(state)}
    for path in {target, cached}:
        atomic_save(path, lambda tmp: torch.save(payload, tmp))
    return target


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SynthmedError(f"{path}: not a readable extractor file ({type(e).__name__}); train "
                            "one with `synthmed features train DATASET_DIR`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SynthmedError(f"{path}: not a synthmed domain extractor; train one with "
                            "`synthmed features train DATASET_DIR`")
    if state_dict_sha256(payload["state_dict"]) != payload.get("sha256"):
        raise SynthmedError(f"{path}: weights do not match their sha256 (corrupt file); retrain it")
    return payload


def load_domain_extractor(path: str | os.PathLike) -> FeatureExtractor:
    """Load a saved domain extractor as a :class:`FeatureExtractor` (features + posteriors)."""
    path = Path(path)
    if not path.is_file():
        raise SynthmedError(f"{path}: extractor file not found; train one with "
                            "`synthmed features train DATASET_DIR --out FILE`")
    payload = _read(path)
    cfg = payload["config"]
    net = build_domain_net(cfg)
    net.load_state_dict(payload["state_dict"])
    info = {"mode": cfg["mode"], "feature_dim": net.feature_dim, "file": str(path),
            "trained_on": dict(cfg["dataset"], n=cfg.get("n_train")),
            "training": {k: cfg[k] for k in ("epochs", "seed", "batch_size", "lr")},
            "class_names": cfg["class_names"] if cfg["mode"] == "supervised" else None}
    return FeatureExtractor(net, name="domain", input_size=tuple(cfg["image_size"]),
                            in_channels=cfg["in_channels"], input_range="model",
                            weights_sha256=payload["sha256"], info=info)
