"""The ``domain`` feature extractor: a small CNN trained on the user's own real training images.

ImageNet-trained Inception features are a poor judge of grayscale medical images (Kynkäänniemi et
al., 2023, "The role of ImageNet classes in Fréchet Inception Distance"); a network trained on the
domain itself sees speckle, texture and lesion shape.

Default (``auto``): self-supervised SimCLR (augment-and-contrast NT-Xent loss, Chen et al., 2020)
with grey-level augmentations, plus, when the split has two or more classes, an auxiliary
class-balanced cross-entropy head (its posteriors give a *domain* Inception Score). A purely
supervised 2-class network (mode ``supervised``, the default before) makes features that are
nearly one-dimensional (the class direction), so noise, blur and shuffled tiles sat "on the real
manifold"; the sanity ladder (:mod:`synthmed.metrics.sanity`) showed it and is now run on every
extractor built, on the dataset's images outside the training split, and stored in the file.
Features: multiscale pooled and standardized (see :class:`DomainFeatureNet`), plus a fixed block
of image statistics (:mod:`synthmed.metrics.imagestats`: spectrum, gradients, local sd, grey
levels, low-frequency layout and its typicality, whitened on the training images) that no
training can talk away. Small on purpose: ~500 28-64 px images train in about 8-24 CPU seconds
(one thread, ladder included), fully offline, deterministic per seed.

The file is a ``torch.save`` dict: ``state_dict``, ``config`` (architecture, training settings and
the dataset's content hash and split, and the ladder under ``sanity``) and ``sha256`` of the
weights; loaded with weights_only=True.
"""

from __future__ import annotations

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
from synthmed.metrics.contrastive import augment, nt_xent
from synthmed.metrics.extractor import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    prepare_images,
    state_dict_sha256,
)
from synthmed.metrics.imagestats import (
    STATS_VERSION,
    block_dim,
    fit_block,
    image_stats,
    layout_columns,
    layout_radius,
)
from synthmed.metrics.sanity import MIN_IMAGES, run_ladder
from synthmed.seed import seed_everything

FORMAT = "synthmed-domain-extractor"
TRAINING_VERSION = 4  # bump when training changes, so cached extractors are retrained
MAX_SIDE = 64
MODES = ("auto", "supervised", "simclr", "simclr+supervised")
LADDER_MAX_IMAGES = 1000
AUX_WEIGHT = 0.5  # weight of the auxiliary class-balanced cross-entropy next to NT-Xent
STATS_WEIGHT = 4.0  # total variance of the fixed statistics block / that of the learned block


class DomainFeatureNet(nn.Module):
    """Strided conv stages -> pooled features -> linear classifier / projection head.

    ``feature_pool`` says what the feature vector is: ``gap`` the global average of the last
    stage (the original design); ``multiscale`` the global averages of *every* stage concatenated
    (early stages keep edge and texture energy, so blur and noise move the features, as in the
    multi-layer features of LPIPS, Zhang et al., 2018) plus a 2x2 average of the last stage (a
    global average cannot see where things are, so shuffled tiles would look real). Multiscale
    features are standardized with the training images' mean and std (buffers ``feat_shift``,
    ``feat_scale``, set by :func:`standardize_features`) and each group (stage, grid) is weighted
    1/sqrt(its width), so the 16 first-stage channels count as much as the 512 grid values;
    otherwise the wide late groups own every distance and blur hides in the early ones. The
    880 standardized values are then projected on their first ``out_dim`` (128) principal axes
    (buffer ``feat_proj``, fitted on the training images; distances kept, and FID's D^3
    covariance algebra stays as cheap as with the old 128-d features).

    ``image_stats`` appends the fixed, non-learned block of :mod:`synthmed.metrics.imagestats`
    (power spectrum, gradient, local sd, grey-level quantiles, low-frequency layout), fitted on
    the training images (:func:`standardize_stats`): the learned block alone left blurred and
    tile-shuffled images inside the real manifold. ``stats_version`` 2 (now): log-scale
    statistics plus the layout's typicality radius, whitened (buffers ``stat_shift``,
    ``stat_scale``, ``stat_proj``, ``layout_shift``, ``layout_proj``); 1 (``training_version``
    3 files): linear statistics scaled one by one (``stat_shift``, ``stat_scale``).
    """

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 0,
                 channels: tuple[int, ...] = (16, 32, 64, 128), proj_dim: int = 0,
                 feature_pool: str = "gap", out_dim: int = 128, image_stats: bool = False,
                 stats_version: int = STATS_VERSION) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("DomainFeatureNet supports spatial_dims=2 only")
        if feature_pool not in ("gap", "multiscale"):
            raise ValueError(f"feature_pool {feature_pool!r}: choose gap or multiscale")
        layers: list[nn.Module] = []
        prev = in_channels
        for c in channels:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            prev = c
        layers += [nn.Conv2d(prev, prev, 3, padding=1, bias=False), nn.BatchNorm2d(prev),
                   nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.feature_pool = feature_pool
        widths = [*channels, prev]
        self.groups = [prev] if feature_pool == "gap" else [*widths, 4 * prev]
        d = self.raw_dim = sum(self.groups)
        self.learned_dim = d if feature_pool == "gap" else min(d, out_dim)
        if feature_pool == "multiscale":
            self.register_buffer("feat_shift", torch.zeros(d))
            self.register_buffer("feat_scale", torch.ones(d))
            self.register_buffer("feat_proj", torch.eye(d, self.learned_dim))
        self.stats_version = stats_version
        self.stats_dim = block_dim(in_channels, stats_version) if image_stats else 0
        if image_stats:
            self.register_buffer("stat_shift", torch.zeros(self.stats_dim))
            self.register_buffer("stat_scale", torch.ones(self.stats_dim))
        if image_stats and stats_version >= 2:
            n_lay = len(layout_columns(in_channels))
            self.register_buffer("stat_proj", torch.eye(self.stats_dim))
            self.register_buffer("layout_shift", torch.zeros(n_lay))
            self.register_buffer("layout_proj", torch.eye(n_lay))
        self.feature_dim = self.learned_dim + self.stats_dim
        self.head = nn.Linear(d, out_channels) if out_channels > 0 else None
        self.proj = (nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))
                     if proj_dim > 0 else None)

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) in [-1, 1] -> unstandardized features (B, raw_dim)."""
        if self.feature_pool == "gap":
            return self.body(x)
        pooled = []
        for layer in self.body:
            if isinstance(layer, nn.AdaptiveAvgPool2d):
                pooled.append(F.adaptive_avg_pool2d(x, 2).flatten(1))  # (B, 4 * C) layout
                break
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_channels, H, W) in [-1, 1] -> features (B, F) [, logits (B, out_channels)]."""
        f = self.raw_features(x)
        if self.feature_pool == "gap":
            out = f
        else:
            out = ((f - self.feat_shift) * self.feat_scale) @ self.feat_proj
        if self.stats_dim:
            out = torch.cat([out, self.stats_block(x)], dim=1)
        return (out, self.head(f)) if self.head is not None else out


    def stats_block(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in_channels, H, W) in [-1, 1] -> the fitted statistics block (B, stats_dim)."""
        if self.stats_version < 2:
            return (image_stats(x, log_scale=False) - self.stat_shift) * self.stat_scale
        s = image_stats(x)
        v = torch.cat([s, layout_radius(s, self.layout_shift, self.layout_proj)], dim=1)
        return ((v - self.stat_shift) * self.stat_scale) @ self.stat_proj


@torch.no_grad()
def standardize_features(net: DomainFeatureNet, x: torch.Tensor, batch: int = 256, *,
                         stats_weight: float = STATS_WEIGHT) -> None:
    """Set a multiscale net's feature standardization from the training images ``x`` (eval mode):
    per dimension (f - mean) / std, times 1/sqrt(group width), dead (constant) units 0; then the
    projection on the principal axes of those standardized training features (PCA). Then the
    statistics block, if any (:func:`standardize_stats`)."""
    if net.feature_pool != "multiscale":
        return
    f = torch.cat([net.raw_features(x[i:i + batch]) for i in range(0, len(x), batch)]).double()
    mean, std = f.mean(0), f.std(0) if len(f) > 1 else torch.zeros(f.shape[1], dtype=f.dtype)
    weight = torch.cat([torch.full((g,), g ** -0.5, dtype=f.dtype) for g in net.groups])
    alive = std > 1e-3 * std.mean().clamp(min=1e-12)
    scale = torch.where(alive, weight / std.clamp(min=1e-12), 0.0)
    net.feat_shift.copy_(mean.float())
    net.feat_scale.copy_(scale.float())
    _, s, vt = torch.linalg.svd((f - mean) * scale, full_matrices=False)
    proj = torch.zeros_like(net.feat_proj, dtype=f.dtype)
    k = min(len(vt), proj.shape[1])
    proj[:, :k] = vt[:k].T  # fewer training images than axes: the rest stay 0
    net.feat_proj.copy_(proj.float())
    learned_var = float((s[:k] ** 2).sum()) / max(len(f) - 1, 1)
    standardize_stats(net, x, learned_var, weight=stats_weight, batch=batch)


def standardize_stats(net: DomainFeatureNet, x: torch.Tensor, learned_var: float, *,
                      weight: float = STATS_WEIGHT, batch: int = 256) -> None:
    """Fit the net's statistics block on the training images ``x`` only, its total variance
    ``weight`` x ``learned_var`` (:func:`synthmed.metrics.imagestats.fit_block`).
    :data:`STATS_WEIGHT` = 4 (docs/metrics.md: with per-statistic scaling, 1 and 2 left DDTI's
    shuffled tiles inside the real manifold; whitened, 2 to 8 all pass the ladder)."""
    if net.stats_dim:
        if net.stats_version < 2:
            raise ValueError("stats_version 1 blocks are only loaded, no longer fitted")
        for name, value in fit_block(x, weight * learned_var, batch=batch).items():
            getattr(net, name).copy_(value)


def _default_size(h: int, w: int) -> list[int]:
    f = min(1.0, MAX_SIDE / max(h, w))
    return [max(8, round(h * f)), max(8, round(w * f))]


def _training_config(data, split: str, *, epochs: int, seed: int, mode: str,
                     image_size: int | None, batch_size: int, lr: float,
                     channels: tuple[int, ...]) -> dict[str, Any]:
    labels = data.labels[data.indices(split)]
    present = sorted(set(labels[labels >= 0].tolist()))
    if mode == "auto":
        mode = "simclr+supervised" if len(present) >= 2 else "simclr"
    if mode in ("supervised", "simclr+supervised") and len(present) < 2:
        raise SynthmedError(f"{data.path}:{split}: {mode} extractor training needs two or more "
                            "labelled classes; use mode 'simclr'")
    contrastive = mode != "supervised"
    h, w = data.size
    return {
        "mode": mode, "in_channels": data.channels, "n_classes": data.n_classes,
        "class_names": data.class_names, "channels": list(channels),
        "image_size": [image_size, image_size] if image_size else _default_size(h, w),
        "proj_dim": 64 if contrastive else 0,
        "feature_pool": "multiscale" if contrastive else "gap", "image_stats": contrastive,
        "stats_weight": STATS_WEIGHT if contrastive else 0.0,
        "stats_version": STATS_VERSION if contrastive else 0,
        "aux_weight": AUX_WEIGHT if mode == "simclr+supervised" else 0.0,
        "epochs": int(epochs), "seed": int(seed),
        "batch_size": int(batch_size), "lr": float(lr), "training_version": TRAINING_VERSION,
        "dataset": {"content_hash": data.content_hash, "split": split},
    }


def build_domain_net(config: dict[str, Any]) -> DomainFeatureNet:
    n_out = config["n_classes"] if config["mode"] in ("supervised", "simclr+supervised") else 0
    return DomainFeatureNet(in_channels=config["in_channels"], out_channels=n_out,
                            channels=tuple(config["channels"]), proj_dim=config["proj_dim"],
                            feature_pool=config.get("feature_pool", "gap"),
                            image_stats=bool(config.get("image_stats", False)),
                            stats_version=int(config.get("stats_version", 1)))


def _class_weight(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    counts = torch.bincount(y[y >= 0], minlength=n_classes).float()
    n = float((y >= 0).sum())
    return torch.where(counts > 0, n / (counts.clamp(min=1) * (counts > 0).sum()), 0.0)


def _step_loss(net: DomainFeatureNet, xb: torch.Tensor, yb: torch.Tensor, cfg: dict[str, Any],
               weight: torch.Tensor | None, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """One batch's loss and its count of correct class predictions.

    ``supervised``: class-balanced cross-entropy on weakly augmented images. ``simclr``: NT-Xent
    between two strong views (Chen et al., 2020). ``simclr+supervised``: NT-Xent plus
    ``aux_weight`` x the cross-entropy of the labelled images' first view, which keeps class
    posteriors (the domain Inception Score) without letting the class direction own the features.
    """
    if cfg["mode"] == "supervised":
        feats, logits = net(augment(xb, gen, strong=False))
        return F.cross_entropy(logits, yb, weight=weight), int((logits.argmax(1) == yb).sum())
    f1 = net.raw_features(augment(xb, gen, strong=True))  # before standardization and PCA
    f2 = net.raw_features(augment(xb, gen, strong=True))
    loss = nt_xent(net.proj(f1), net.proj(f2))
    if net.head is None:
        return loss, 0
    logits = net.head(f1)
    keep = yb >= 0
    if keep.any():
        loss = loss + cfg["aux_weight"] * F.cross_entropy(logits[keep], yb[keep], weight=weight)
    return loss, int((logits[keep].argmax(1) == yb[keep]).sum())


def _fit(net: DomainFeatureNet, x: torch.Tensor, y: torch.Tensor, cfg: dict[str, Any],
         gen: torch.Generator) -> dict[str, float]:
    """The training loop (Adam, cosine learning rate); returns the last epoch's loss."""
    weight = None
    if cfg["mode"] == "supervised":
        x, y = x[y >= 0], y[y >= 0]
    if cfg["mode"] != "simclr":
        weight = _class_weight(y, cfg["n_classes"])
    bs = max(2, min(cfg["batch_size"], len(x)))
    steps_per_epoch = max(1, len(x) // bs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"] * steps_per_epoch)
    net.train()
    loss_sum, correct, seen, labelled = 0.0, 0, 0, 0
    for _epoch in range(cfg["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        loss_sum, correct, seen, labelled = 0.0, 0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            loss, ok = _step_loss(net, x[idx], y[idx], cfg, weight, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            seen += len(idx)
            correct += ok
            labelled += int((y[idx] >= 0).sum())
    net.eval()
    standardize_features(net, x, stats_weight=cfg.get("stats_weight", STATS_WEIGHT))
    out = {"final_loss": loss_sum / max(seen, 1)}
    if cfg["mode"] != "simclr":
        out["final_train_accuracy"] = correct / max(labelled, 1)
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

    if mode not in MODES:
        raise SynthmedError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
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
    cfg["sanity"] = _ladder(net, cfg, data, split, seed)
    cfg["synthmed_version"] = __version__
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    payload = {"format": FORMAT, "state_dict": state, "config": cfg,
               "sha256": state_dict_sha256(state)}
    for path in {target, cached}:
        atomic_save(path, lambda tmp: torch.save(payload, tmp))
    return target


def _heldout_rows(data, split: str) -> tuple[np.ndarray, str]:
    """Images the extractor did not train on (every other split), else the training split."""
    if split != "all":
        rows = np.flatnonzero(data.splits != split)
        if len(rows) >= MIN_IMAGES:
            held = sorted(set(data.splits[rows].tolist()))
            return rows, "held-out (" + "+".join(held) + ")"
    return data.indices(split), f"{split} (no held-out split: the extractor saw these images)"


def _ladder(net: DomainFeatureNet, cfg: dict[str, Any], data, split: str,
            seed: int) -> dict[str, Any]:
    """The sanity ladder (:mod:`synthmed.metrics.sanity`) on up to LADDER_MAX_IMAGES images the
    extractor did not train on; stored in the file as ``config["sanity"]``."""
    rows, source = _heldout_rows(data, split)
    rng = np.random.default_rng(seed)
    if len(rows) > LADDER_MAX_IMAGES:
        rows = np.sort(rng.choice(rows, LADDER_MAX_IMAGES, replace=False))
    ex = FeatureExtractor(net, name="domain", input_size=tuple(cfg["image_size"]),
                          in_channels=cfg["in_channels"], input_range="model")
    return run_ladder(lambda im: ex.extract(im).features, np.asarray(data.images[rows]),
                      seed=seed, source=source)


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
            "class_names": cfg["class_names"] if net.head is not None else None,
            "sanity": cfg.get("sanity")}
    return FeatureExtractor(net, name="domain", input_size=tuple(cfg["image_size"]),
                            in_channels=cfg["in_channels"], input_range="model",
                            weights_sha256=payload["sha256"], info=info)


def _domain_factory(path: str | os.PathLike | None = None, **_: Any) -> FeatureExtractor:
    if path is None:
        raise SynthmedError("the domain extractor needs a file: pass --extractor FILE or --train "
                            "DATASET_DIR:train to train one")
    return load_domain_extractor(path)


FEATURE_EXTRACTORS.register("domain", _domain_factory)
