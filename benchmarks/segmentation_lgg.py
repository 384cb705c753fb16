"""Segmentation-utility benchmark on LGG brain FLAIR (tumour masks) with pix2pix pairs, end to end.

1. import ``../shared/datasets/lgg_brain_mri/lgg_flair_tumor_slices_256.npz`` at 64 px, split by
   patient (80/10/10 of the 110 patients; all 1373 slices hold tumour);
2. train pix2pix (mask + 8x8 anatomy channel -> FLAIR) on the train patients only;
3. ``generate --masks-from`` the train masks with edits (translate, rotate, scale, flip,
   elastic): image+mask pairs, ``pairs_per_real`` per real training slice;
4. ``run_utility`` (task segmentation, U-Net): real, real+classic, real+classic+synthetic,
   real+classic+duplicate, synthetic-only; Dice, IoU, HD95 on the real test patients over seeds,
   plus the memorization audit of the pairs;
5. low-data: the same arms with ``low_data`` fractions of the training patients (val/test
   unchanged), each with its own pix2pix trained on those patients only, so the synthetic arm
   never sees more patients than the real arm;
6. a table beside two anchors, written to ``WORK/benchmark.md``.

Anchors: the brain-MRI pix2pix study (synthetic augmentation improved tumour Dice; a segmenter
trained on synthetic pairs alone was comparable to one trained on real data) and a 2023 StyleGAN2-
ADA study of FLAIR images with masks (+0.04 Dice on test with synthetic augmentation).

Settings (defaults below): pix2pix at 64 px, width 16, batch 16, 3,000 steps on all patients
and 1,500 on each low-data subset; U-Net 8 epochs at batch 16 on all patients and 8 / fraction
on a subset (about the same steps: 80 at 10 %, 32 at 25 %), 4 arms x 5 seeds. Measured on the
shared 2-core machine with one thread (1 Dec 2026, 8 epochs everywhere): 25.7 CPU-minutes in all.
The subsets' utility arms at 8 / fraction epochs cost 26 (10 %) and about 25 (25 %) CPU-minutes
(7 Dec 2026), so a default run is now about 70 CPU-minutes (not timed end to end).
The table's last line gives the CPU time measured. ``--gan-steps`` sets the pix2pix steps (the
subsets get half), ``--epochs``, ``--seeds`` and ``--arms`` the rest.
``--quick`` (20-step pix2pix, 1 epoch, 2 seeds, 25 % low-data set only) checks the pipeline in
about 15 minutes; its numbers mean nothing.
``--variants STEPS [--only NAMES]`` (issue 21) trains one pix2pix per generator x conditioning
(:data:`VARIANTS`) for STEPS steps on all patients and scores each pair set with ``synthmed
evaluate --metrics privacy,labels`` (label consistency beside the memorization audit), writing
``WORK/lgg-variants/variants.md`` and mask | synthetic grids; no utility arms (600 steps: ~16
CPU-minutes). ``--maps STEPS [--maps-run RUN] --maps-into TAG`` feeds label maps sampled from an
unconditional generator into that variant's image run (conditioning (d)); with ``--utility`` the
utility arms (``--arms``, ``--seeds``, ``--epochs``) train on those pairs too (the
anonymous-sharing claim: synthetic-only vs real+classic Dice on the real test patients).

Usage::

    .venv/bin/python benchmarks/segmentation_lgg.py [--quick] [--work DIR] [--npz FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "datasets" / "lgg_brain_mri" / "lgg_flair_tumor_slices_256.npz"
EDITS = ["translate=0.1", "rotate=20", "scale=0.8:1.25", "flip=h", "elastic=3"]
# `real` (no augmentation at all) is left out to fit the CPU budget: the studies' baseline is
# real + classic augmentation; add it back with --arms for a full run.
ARMS = "[real+classic, real+classic+synthetic, real+classic+duplicate, synthetic-only]"


@dataclass
class Settings:
    size: int = 64
    gan_steps: int = 3000  # the lgg_pix2pix.yaml recipe; 800 steps left the brains blurred
    low_data_gan_steps: int = 1500  # fewer patients, fewer distinct slices: fewer steps
    gan_width: int = 16
    gan_batch: int = 16
    gan_seed: int = 0  # train.seed of the pix2pix runs (a second seed: a second generator)
    pairs_per_real: float = 1.0
    epochs: int = 8  # 3 epochs left the U-Net under-trained: bigger arms won by seeing more steps
    batch_size: int = 16
    seeds: int = 5
    low_data: list[float] = field(default_factory=lambda: [0.1, 0.25])
    threads: int = 1
    arms: str = ARMS


QUICK = dict(gan_steps=20, low_data_gan_steps=20, gan_width=8, epochs=1, seeds=2, low_data=[0.25],
             threads=1)


def import_real(npz: Path, out: Path, size: int) -> Path:
    from synthmed.data.importer import import_dataset

    if not (out / "dataset.json").is_file():
        import_dataset(npz, out, npz_keys=["groups=patient"], no_labels=True, size=size,
                       force=True, progress=False)
    return out


def patient_subset(data: Path, out: Path, fraction: float, seed: int = 0) -> Path:
    """The same dataset with only ``fraction`` of the training patients (val/test kept)."""
    from synthmed.data.dataset import PreparedDataset, write_prepared

    ds = PreparedDataset(data)
    train = ds.indices("train")
    patients = np.unique(ds.groups[train])
    keep = np.random.default_rng(seed).permutation(patients)[
        : max(1, round(fraction * len(patients)))]
    rows = np.sort(np.concatenate([train[np.isin(ds.groups[train], keep)],
                                   ds.indices("val"), ds.indices("test")]))
    return write_prepared(out, images=np.asarray(ds.images[rows]), labels=ds.labels[rows],
                          splits=ds.splits[rows].tolist(), class_names=ds.class_names,
                          groups=ds.groups[rows].tolist(), masks=np.asarray(ds.masks[rows]),
                          name=out.name, force=True)


def train_pix2pix(data: Path, runs: Path, s: Settings, name: str, steps: int,
                  extra: list[str] | None = None) -> Path:
    from synthmed.config import load_config
    from synthmed.training import train

    every = max(steps // 4, 1)
    cfg = load_config(ROOT / "configs" / "lgg_pix2pix.yaml", [
        f"name={name}", f"data.path={data}", f"model.image_size={s.size}",
        f"model.base_width={s.gan_width}", f"train.steps={steps}",
        f"train.batch_size={s.gan_batch}", f"train.num_threads={s.threads}",
        f"train.seed={s.gan_seed}",
        f"train.sample_every={every}", f"train.checkpoint_every={every}", *(extra or [])])
    return train(cfg, runs_dir=runs, progress=False)


def make_pairs(run: Path, data: Path, out: Path, s: Settings) -> Path:
    from synthmed.data.dataset import PreparedDataset
    from synthmed.sampling.pairs import write_pairs

    n = max(1, round(s.pairs_per_real * len(PreparedDataset(data).indices("train"))))
    return write_pairs(run, out, masks_from=f"{data}:train", n=n, edits=EDITS, fmt="npz",
                       force=True)


def utility(data: Path, pairs: Path, runs: Path, s: Settings, name: str) -> dict:
    from synthmed.config import load_config
    from synthmed.tasks.utility import run_utility

    cfg = load_config(None, [
        f"name={name}", f"data.path={data}", "utility.task=segmentation",
        f"utility.synthetic={pairs}", f"utility.arms={s.arms}", "utility.ratios=[1.0]",
        f"utility.epochs={s.epochs}", f"utility.batch_size={s.batch_size}",
        f"utility.seeds={s.seeds}", f"utility.num_threads={s.threads}"])
    run = run_utility(cfg, runs_dir=runs, log=print)
    return json.loads((run / "utility.json").read_text(encoding="utf-8"))


def feature_audit(data: Path, pairs: Path, out: Path) -> dict:
    """The audit in pixels *and* features (``synthmed evaluate --metrics privacy``: the domain
    extractor trained on the train split, the test patients as the held-out side), because the
    anonymization claim needs both; the utility's own audit is pixel-only (val+test held out)."""
    from synthmed.metrics.evaluate import evaluate

    m = evaluate(f"{data}:test", pairs, train=f"{data}:train", metrics="privacy", out=out,
                 cache_dir=out.parent / "cache")
    return {k: m.get(k) for k in ("copy_rate", "membership_auc", "copy_rate_features",
                                  "membership_auc_features")}


# --variants (issue 21): one pix2pix per generator x conditioning on all training patients, each
# scored by `synthmed evaluate --metrics privacy,labels` (no utility arms: a CPU budget of ~15 min)
SPADE_B = ["model.conditioning=brain", "model.generator=spade", "model.discriminator=pooled",
           "model.pair_augment=true"]
VARIANTS = {
    "unet/anatomy (old default)": ["model.conditioning=anatomy"],
    "unet-resize+pooled/anatomy": ["model.conditioning=anatomy", "model.upsample=resize",
                                   "model.discriminator=pooled", "model.pair_augment=true"],
    "unet-resize+pooled/mask (a)": ["model.conditioning=mask", "model.upsample=resize",
                                    "model.discriminator=pooled", "model.pair_augment=true"],
    "unet-resize+pooled/brain (b)": ["model.conditioning=brain", "model.upsample=resize",
                                     "model.discriminator=pooled", "model.pair_augment=true"],
    "unet-resize+pooled/prior (c)": ["model.conditioning=prior", "model.upsample=resize",
                                     "model.discriminator=pooled", "model.pair_augment=true"],
    "spade+pooled/prior (c)": ["model.conditioning=prior", "model.generator=spade",
                               "model.discriminator=pooled", "model.pair_augment=true"],
    # second round: one mask, many images (OASIS noise vector; DSGAN diversity term)
    "spade+noise+ds/brain (b, L1 10)": SPADE_B + ["model.noise_dim=16", "model.l1_weight=10",
                                                  "model.diversity_weight=10"],
    "spade+noise+ds/brain (b, L1 100)": SPADE_B + ["model.noise_dim=16",
                                                   "model.diversity_weight=60"],
    # third round: cheap changes against memorization at 10 % of patients (a smaller generator;
    # fewer steps are `--variants STEPS` itself)
    "spade+noise+ds/brain (b, L1 100, width 8)": SPADE_B + [
        "model.noise_dim=16", "model.diversity_weight=60", "model.base_width=8"],
    # fourth round: (c) the population prior at the fractions, else as the L1 100 (b) row
    "spade+noise+ds/prior (c, L1 100)": [c.replace("brain", "prior") for c in SPADE_B] + [
        "model.noise_dim=16", "model.diversity_weight=60"],
    "spade+noise+ds+oasis/brain (b, L1 100)": SPADE_B + [
        "model.noise_dim=16", "model.diversity_weight=60", "model.discriminator=oasis"],
    "spade+noise+ds+oasis/brain (b, L1 10)": SPADE_B + [
        "model.noise_dim=16", "model.l1_weight=10", "model.diversity_weight=10",
        "model.discriminator=oasis"],
}
DIVERSITY_MASKS, DIVERSITY_SEEDS = 16, 4  # same-mask spread: 16 train masks x 4 seeds


def same_mask_spread(run: Path, data: Path, out: Path | None = None) -> dict:
    """How different the images of one mask are: :data:`DIVERSITY_SEEDS` seeds for each of
    :data:`DIVERSITY_MASKS` training masks (with their source images for the brain/prior channel),
    mean MS-SSIM over the same-mask pairs (1 = identical) beside MS-SSIM over pairs of real
    training slices, and the mean absolute pixel difference; ``out``: a grid, one row per mask
    (mask, then the samples)."""
    import torch
    from monai.metrics.regression import compute_ms_ssim

    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.fidelity import MS_SSIM_KERNEL, MS_SSIM_WEIGHTS, ms_ssim_pairs
    from synthmed.sampling.sampler import load_generator

    ds = PreparedDataset(data)
    train = ds.indices("train")
    rows = np.random.default_rng(0).choice(train, DIVERSITY_MASKS, replace=False)
    imgs = torch.from_numpy(np.asarray(ds.images[rows], np.float32) / 127.5 - 1)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    masks = torch.from_numpy(np.asarray(ds.masks[rows], np.float32))[:, None]
    sampler = load_generator(run, device="cpu").sampler
    k = DIVERSITY_SEEDS
    fake = torch.stack([sampler.from_masks([1000 * j + i for i in range(len(rows))], masks, imgs)
                        for j in range(k)], 1)  # (M, k, 1, H, W)
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    unit = (fake.float() + 1) / 2
    a = torch.cat([unit[:, i] for i, _ in pairs])
    b = torch.cat([unit[:, j] for _, j in pairs])
    ms = compute_ms_ssim(a, b, spatial_dims=2, data_range=1.0, kernel_size=MS_SSIM_KERNEL,
                         kernel_sigma=1.5, weights=MS_SSIM_WEIGHTS).reshape(-1)
    real = ms_ssim_pairs(np.asarray(ds.images[train]), n_pairs=200, seed=0)
    if out is not None:
        from PIL import Image

        tiles = torch.cat([masks * 2 - 1, fake[:, :, 0]], 1)[:8]  # (8, 1 + k, H, W)
        grid = ((tiles.permute(0, 2, 1, 3).flatten(2).flatten(0, 1) + 1) * 127.5)
        Image.fromarray(grid.clamp(0, 255).byte().numpy()).resize(
            (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    return {"ms_ssim_same_mask": float(ms.mean()), "ms_ssim_real": real[0],
            "mean_abs_diff": float((a - b).abs().mean() * 2)}


def _variant_grid(pairs: Path, out: Path, n: int = 8) -> None:
    """mask | synthetic for the first ``n`` edited pairs, two pairs per row, 3x enlarged."""
    from PIL import Image

    from synthmed.sampling.io import load_synthetic

    s = load_synthetic(pairs)
    tiles = [np.concatenate([s.masks[i] * 255, np.full((s.masks.shape[1], 2), 128, np.uint8),
                             s.images[i, 0]], 1) for i in range(min(n, len(s)))]
    rows = [np.concatenate([a, np.full((a.shape[0], 6), 255, np.uint8), b], 1)
            for a, b in zip(tiles[::2], tiles[1::2], strict=False)]
    grid = np.concatenate([np.pad(r, ((0, 4), (0, 0)), constant_values=255) for r in rows])
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(out)


def variants(data: Path, work: Path, s: Settings, steps: int, only: str | None = None) -> str:
    """Train, pair and score each of :data:`VARIANTS`; a markdown table (CPU minutes per row)."""
    from synthmed.metrics.evaluate import evaluate

    lines = ["### LGG 64 px, all training patients: label consistency vs memorization per "
             f"generator x conditioning ({steps} pix2pix steps each)", "",
             "| generator / conditioning | Dice synth / real test (ratio) | lesions found synth "
             "/ real | edited: translate strong half Dice | membership AUC pixel / features "
             "| copy rate pixel / features | MS-SSIM same mask / real pairs | CPU min |",
             "|---|---|---|---|---|---|---|---|"]
    for name, opts in VARIANTS.items():
        if only and not any(o.strip() and o.strip() in (name.split(" ")[0], _tag(name))
                            for o in only.split(",")):
            continue
        t = _cpu_seconds()
        tag = _tag(name)
        run = train_pix2pix(data, work / "runs", s, f"lgg-var-{tag}", steps, extra=opts)
        pairs = make_pairs(run, data, work / f"pairs-var-{tag}", s)
        m = evaluate(f"{data}:test", pairs, train=f"{data}:train", metrics="privacy,labels",
                     out=work / f"eval-var-{tag}", cache_dir=work / "cache", plots=False)
        _variant_grid(pairs, work / f"grid-{tag}.png")
        d = same_mask_spread(run, data, work / f"seeds-{tag}.png")
        lc = m["label_consistency"]
        tr = lc["by_edit"].get("translate", {}).get("stronger_half", {})
        f = "{:.3f}".format
        lines.append(
            f"| {name} | {f(lc['synthetic']['dice'])} / {f(lc['real_test']['dice'])} "
            f"({f(lc['dice_ratio'])}) | {f(lc['synthetic']['detection_rate'])} / "
            f"{f(lc['real_test']['detection_rate'])} | {f(tr.get('dice') or float('nan'))} | "
            f"{f(m['membership_auc'])} / {f(m['membership_auc_features'])} | "
            f"{f(m['copy_rate'])} / {f(m['copy_rate_features'])} | "
            f"{f(d['ms_ssim_same_mask'])} / {f(d['ms_ssim_real'])} | "
            f"{(_cpu_seconds() - t) / 60:.1f} |")
        (work / f"variants{'-' + tag if only else ''}.md").write_text("\n".join(lines) + "\n",
                                                                      encoding="utf-8")
        print(lines[-1], flush=True)
    lines += ["", f"Segmenter: {lc['segmenter']['arch']} seed {lc['segmenter']['seed']}, val Dice "
              f"{lc['segmenter']['val_dice']:.3f}; edits: {' '.join(EDITS)}; total CPU "
              f"{_cpu_seconds() / 60:.1f} min", ""]
    return "\n".join(lines)


def synthetic_maps(data: Path, work: Path, s: Settings, image_tag: str, map_steps: int,
                   maps_run: Path | None = None, with_utility: bool = False, *,
                   maps_set: list[str] | None = None, suffix: str = "",
                   exclude: str | None = None, augment: int = 0,
                   augment_strength: float = 1.0) -> str:
    """Conditioning (d): label maps of the training patients -> an unconditional generator
    (configs/lgg_labelmaps.yaml, a VAE, ``map_steps``) -> its sampled maps into the image run of
    variant ``image_tag`` (the latest ``lgg-var-TAG`` run in ``work/runs``): pairs scored like a
    variant, plus the memorization audit of the sampled maps themselves against the training
    maps. ``maps_set``: overrides of the map generator's config (e.g. ``model.kl_weight=8``);
    ``suffix``: appended to every output name (runs, pairs, audits, grids) so variants sit side
    by side; ``exclude``: the identifiability filter's calibration (``patients`` or ``val``,
    :mod:`synthmed.metrics.identifiability`) applied to the sampled maps; the maps' audit then
    scores the kept maps only; ``augment``: the map generator trains on :func:`augmented_maps`
    with that many moved copies per training map."""
    from synthmed.config import load_config
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.evaluate import evaluate
    from synthmed.sampling.labelmaps import write_labelmap_dataset, write_pairs_from_maps
    from synthmed.sampling.writer import write_synthetic
    from synthmed.training import train

    t = _cpu_seconds()
    maps = work / "maps-data"
    if not (maps / "dataset.json").is_file():
        write_labelmap_dataset(data, maps)
    if maps_run is None:
        st = f"-s{augment_strength:g}" if augment_strength != 1 else ""
        fit = augmented_maps(maps, work / f"maps-data-aug{augment}{st}", augment,
                             strength=augment_strength) if augment else maps
        cfg = load_config(ROOT / "configs" / "lgg_labelmaps.yaml", [
            f"name=lgg-labelmaps{suffix}", f"data.path={fit}", f"train.steps={map_steps}",
            f"train.num_threads={s.threads}", f"train.sample_every={max(map_steps // 4, 1)}",
            f"train.checkpoint_every={max(map_steps // 4, 1)}", *(maps_set or [])])
        maps_run = train(cfg, runs_dir=work / "runs", progress=False)
    t_maps = _cpu_seconds() - t
    image_run = sorted((work / "runs").glob(f"*-lgg-var-{image_tag}"))[-1]
    n = len(PreparedDataset(data).indices("train"))
    rule, _, q = (exclude or "").partition(":")
    pairs = write_pairs_from_maps(image_run, work / f"pairs-maps-{image_tag}{suffix}",
                                  maps_run=maps_run, n=n, fmt="npz", force=True,
                                  exclude_near_copies=rule or None,
                                  near_copy_quantile=float(q) if q else None)
    m = evaluate(f"{data}:test", pairs, train=f"{data}:train", metrics="privacy,labels",
                 out=work / f"eval-maps-{image_tag}{suffix}", cache_dir=work / "cache",
                 plots=False)
    gen = json.loads((pairs / "generation.json").read_text(encoding="utf-8"))
    kept = gen["seeds"] if exclude else None  # the maps' audit scores the maps the pairs use
    sampled = write_synthetic(maps_run, work / f"maps-sampled{suffix}", n=None if kept else n,
                              seeds=kept, fmt="npz", force=True)
    mm = evaluate(f"{maps}:test", sampled, train=f"{maps}:train", metrics="privacy",
                  out=work / f"eval-maps-sampled{suffix}", cache_dir=work / "cache-maps",
                  plots=False)
    _variant_grid(pairs, work / f"grid-maps-{image_tag}{suffix}.png", n=16)
    lc, f = m["label_consistency"], "{:.3f}".format
    excl = gen.get("excluded_near_copies") or {}
    lines = [f"### Conditioning (d): synthetic label maps ({gen['masks_from_run']['step']}-step "
             f"{gen['masks_from_run']['model']} on the training maps{suffix}) into {image_tag}",
             "", "| set | Dice synth / real test (ratio) | lesions found synth / real | "
             "membership AUC pixel [95% CI] | membership AUC features [95% CI] | copy rate "
             "pixel / features |", "|---|---|---|---|---|---|",
             f"| pairs from sampled maps | {f(lc['synthetic']['dice'])} / "
             f"{f(lc['real_test']['dice'])} ({f(lc['dice_ratio'])}) | "
             f"{f(lc['synthetic']['detection_rate'])} / {f(lc['real_test']['detection_rate'])} | "
             f"{_auc(m)} | {_auc(m, '_features')} | "
             f"{f(m['copy_rate'])} / {f(m['copy_rate_features'])} |",
             f"| the sampled maps vs training maps | | | {_auc(mm)} | {_auc(mm, '_features')} | "
             f"{f(mm['copy_rate'])} / {f(mm['copy_rate_features'])} |", "",
             f"Maps with no lesion after decoding: {gen['empty_lesion_maps']} of {gen['n']}. "
             + (f"Identifiability filter ({excl.get('calibration')}): dropped {excl.get('count')}"
                f" of {excl.get('n_drawn')} drawn maps. " if excl else "")
             + (f"Map generator trained on {augment} moved copies (strength "
                f"{augment_strength:g}) per training map besides the maps. " if augment else "")
             + f"Map run: {maps_run}. Overrides: {' '.join(maps_set or []) or 'none'}. CPU: map "
             f"generator {t_maps / 60:.1f} min, all {(_cpu_seconds() - t) / 60:.1f} min.", ""]
    if with_utility:
        lines.append(pairs_utility(data, pairs, work, s, f"lgg-maps-{image_tag}{suffix}"))
    text = "\n".join(lines)
    (work / f"maps-{image_tag}{suffix}.md").write_text(text, encoding="utf-8")
    return text


def _auc(m: dict, space: str = "") -> str:
    """'0.643 [0.463, 0.812]': a metrics.json membership AUC with its interval."""
    auc, ci = m.get(f"membership_auc{space}"), m.get(f"membership_auc_ci95{space}")
    if auc is None:
        return ""
    return f"{auc:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def augmented_maps(maps: Path, out: Path, copies: int, seed: int = 0,
                   strength: float = 1.0) -> Path:
    """``maps`` with ``copies`` randomly moved copies of every *training* map added as training
    rows of the same patient (:func:`synthmed.sampling.labelmaps.augment_labelmap_dataset`, as
    ``synthmed data labelmaps --augment K --augment-strength S``); reused when ``out`` exists.
    The VAE trainer has no augmentation; the audit still compares with the original maps."""
    from synthmed.sampling.labelmaps import augment_labelmap_dataset

    if (out / "dataset.json").is_file():
        return out
    return augment_labelmap_dataset(maps, out, copies, strength=strength, seed=seed, force=True)


def pairs_utility(data: Path, pairs: Path, work: Path, s: Settings, name: str) -> str:
    """The utility arms (``s.arms``, ``s.seeds``, ``s.epochs``) with ``pairs`` as the synthetic
    set, e.g. (d) pairs from sampled maps (``--maps STEPS --utility``): a markdown block."""
    t = _cpu_seconds()
    doc = utility(data, pairs, work / "util", s, name)
    cpu = (_cpu_seconds() - t) / 60
    return utility_table(doc, f"Utility arms with {pairs.name} ({s.epochs} epochs, "
                              f"{len(doc['seeds'])} seeds; {cpu:.1f} CPU-min)")


def utility_table(doc: dict, title: str) -> str:
    """Test Dice per arm (mean [95 % t-interval over seeds]), synthetic-only / real+classic (the
    ratio of means and the mean [t-interval] of the per-seed ratios: the anonymous-sharing claim
    asks >= 0.85), and every Dice comparison with its Holm-adjusted p (utility.json's
    ``comparisons``; the intervals are the unadjusted paired t-intervals)."""
    from synthmed.tasks.stats import t_interval

    f = "{:.3f}".format
    lines = [f"### {title}", "", "| arm | n train | test Dice [95% CI] | IoU | HD95 (px) |",
             "|---|---|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in doc["runs"]):
        n = next(r["n_train"] for r in doc["runs"] if r["arm"] == arm)
        lines.append(f"| {arm} | {n} | " + " | ".join(
            _cell(doc["summary"], arm, m) for m in ("dice", "iou", "hd95")) + " |")
    per_seed = {(r["arm"], r["seed"]): r["test"]["dice"] for r in doc["runs"]}
    seeds = [sd for sd in doc["seeds"]
             if ("synthetic-only", sd) in per_seed and ("real+classic", sd) in per_seed]
    lines.append("")
    if seeds:
        syn = np.array([per_seed[("synthetic-only", sd)] for sd in seeds])
        real = np.array([per_seed[("real+classic", sd)] for sd in seeds])
        r = syn / real
        ci = t_interval(r) if len(r) > 1 else (float("nan"), float("nan"))
        lines.append(f"- synthetic-only / real+classic Dice: {f(syn.mean() / real.mean())} "
                     f"(per-seed ratios {f(r.mean())} [{f(ci[0])}, {f(ci[1])}], {len(seeds)} "
                     "seeds; goal >= 0.85)")
    for c in doc["comparisons"]:
        if c["metric"] == "dice":
            lines.append(f"- {c['arm']} vs {c['reference']}: {c['mean_diff']:+.3f} "
                         f"[{f(c['ci95'][0])}, {f(c['ci95'][1])}], Holm p "
                         f"{c.get('p_holm', float('nan')):.2g} ({c['n']} seeds)")
    lines += [f"- {x}" for x in doc["result_lines"] if "memorization audit" in x]
    return "\n".join(lines) + "\n"


def _tag(name: str) -> str:
    """A variant's file-name tag: its name without spaces, '/', '+', ',' or parentheses."""
    for a, b in [(" (", "-"), (", ", "-"), (" ", "-"), ("/", "-"), ("+", "-"), (")", "")]:
        name = name.replace(a, b)
    return name


def _cell(summary: list[dict], arm: str, metric: str) -> str:
    for x in summary:
        if x["arm"] == arm and x["metric"] == metric and x["mean"] is not None:
            ci = x["ci95"]
            text = f"{x['mean']:.3f}"
            return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else "")
    return ""


def table(results: dict[str, dict], timings: dict[str, float], s: Settings, quick: bool) -> str:
    lines = [f"### LGG FLAIR tumour segmentation with pix2pix pairs"
             f"{' (--quick: smoke run, numbers meaningless)' if quick else ''}", "",
             "| training patients | arm | Dice [95% CI] | IoU | HD95 (px) |",
             "|---|---|---|---|---|"]
    for setting, doc in results.items():
        for arm in dict.fromkeys(r["arm"] for r in doc["runs"]):
            lines.append(f"| {setting} | {arm} | " + " | ".join(
                _cell(doc["summary"], arm, m) for m in ("dice", "iou", "hd95")) + " |")
    lines += ["| anchor: brain-MRI pix2pix study | synthetic augmentation | improved | | |",
              "| anchor: brain-MRI pix2pix study | synthetic-only | comparable to real | | |",
              "| anchor: 2023 StyleGAN2-ADA FLAIR+mask | synthetic augmentation | +0.04 | | |", ""]
    for setting, doc in results.items():
        lines += [f"- {setting}: {x}" for x in doc["result_lines"]]
        if doc.get("feature_audit"):
            a = doc["feature_audit"]
            lines.append(f"- {setting}: audit against the test patients (synthmed evaluate): copy "
                         f"rate pixel {a['copy_rate']:.3f} / features {a['copy_rate_features']:.3f}"
                         f", membership AUC pixel {a['membership_auc']:.3f} / features "
                         f"{a['membership_auc_features']:.3f}")
    total = sum(timings.values())
    cpu = _cpu_seconds()
    lines += ["", "Settings: " + json.dumps(asdict(s)) + f"; edits: {' '.join(EDITS)}",
              "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) +
              f", total {total:.0f} ({total / 60:.1f} min); CPU time {cpu / 60:.1f} min "
              f"(with {s.threads} thread(s); wall time on a shared machine overstates it)", ""]
    return "\n".join(lines)


def fraction_epochs(epochs: int, fraction: float) -> int:
    """U-Net epochs on ``fraction`` of the training patients that give about the steps of
    ``epochs`` on all of them: at 10 % of patients 8 epochs were ~48 steps and left real+classic
    at Dice 0.11-0.46 over seeds, best epoch the last (docs/results.md section 4, fourth round);
    80 epochs gave 0.567 [0.551, 0.584]. An explicit ``--epochs`` is used as given."""
    return max(1, round(epochs / fraction))


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthmed segmentation utility on LGG with pix2pix")
    p.add_argument("--quick", action="store_true", help="smoke run (minutes)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-segmentation")
    p.add_argument("--npz", type=Path, default=NPZ)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--arms", default=None, help=f"utility arms (default {ARMS})")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--gan-steps", type=int, default=None,
                   help="pix2pix steps on all patients (the low-data subsets get half)")
    p.add_argument("--gan-seed", type=int, default=0,
                   help="train.seed of the pix2pix runs (use another --work per seed)")
    p.add_argument("--variants", type=int, default=None, metavar="STEPS",
                   help="issue 21: each generator x conditioning for STEPS pix2pix steps on all "
                        "patients, scored for label consistency and memorization (no utility)")
    p.add_argument("--only", default=None, help="--variants: comma list of variant names "
                   "(the part before the space, e.g. unet-resize+pooled/brain)")
    p.add_argument("--maps", type=int, default=None, metavar="STEPS",
                   help="issue 21 (d): a STEPS-step label-map generator whose samples feed the "
                        "image run of --maps-into; scored like a variant")
    p.add_argument("--maps-into", default="spade-noise-ds-brain-b-L1-10",
                   help="--maps: the variant tag of the image run (trained by --variants)")
    p.add_argument("--maps-run", type=Path, default=None,
                   help="--maps: an already trained label-map run instead of training one")
    p.add_argument("--utility", action="store_true",
                   help="--maps: also run the utility arms (--arms, --seeds, --epochs) with the "
                        "pairs from sampled maps as the synthetic set")
    p.add_argument("--maps-set", action="append", default=None, metavar="KEY=VALUE",
                   help="--maps: an override of the map generator's config "
                        "(configs/lgg_labelmaps.yaml), repeatable, e.g. model.kl_weight=8")
    p.add_argument("--maps-suffix", default="",
                   help="--maps: a tag appended to the output names after a '-' (e.g. kl8: "
                        "pairs-maps-TAG-kl8), so runs sit side by side")
    p.add_argument("--maps-exclude", default=None, metavar="patients|val[:Q]",
                   help="--maps: drop sampled maps that identify a training patient "
                        "(generate --exclude-near-copies), calibrated on the training patients "
                        "or on the val patients (quantile Q, default 0.05)")
    p.add_argument("--maps-augment", type=int, default=0, metavar="K",
                   help="--maps: train the map generator on the maps plus K randomly moved "
                        "(flip, rotate, scale, shift) copies of each training map")
    p.add_argument("--maps-augment-strength", type=float, default=1.0, metavar="S",
                   help="--maps-augment: multiply the rotation/scale/shift ranges by S; above 1 "
                        "also an elastic warp of up to 3 (S - 1) px")
    p.add_argument("--fraction", type=float, default=None,
                   help="--variants/--maps: train and score on this fraction of the training "
                        "patients (val/test kept; WORK/lgg-variants-PCTpct)")
    args = p.parse_args(argv)
    if not args.npz.is_file():
        print(f"{args.npz}: not found (see ../shared/datasets/README.md); skipping")
        return 0
    s = replace(Settings(), **(QUICK if args.quick else {}))
    s = replace(s, threads=args.threads or s.threads, arms=args.arms or s.arms,
                seeds=args.seeds or s.seeds, epochs=args.epochs or s.epochs,
                gan_seed=args.gan_seed)
    if args.gan_steps:
        s = replace(s, gan_steps=args.gan_steps, low_data_gan_steps=max(1, args.gan_steps // 2))
    work = args.work / f"lgg-{'quick' if args.quick else 'full'}"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = import_real(args.npz, work / "data", s.size)
    timings["import"] = time.perf_counter() - t
    vwork = args.work / "lgg-variants"
    if args.fraction and (args.maps or args.variants):
        pct = f"{round(args.fraction * 100)}pct"
        vwork, sub = args.work / f"lgg-variants-{pct}", work / f"data-{pct}"
        data = sub if (sub / "dataset.json").is_file() else patient_subset(data, sub,
                                                                           args.fraction)
    if args.fraction and not args.epochs:
        s = replace(s, epochs=fraction_epochs(s.epochs, args.fraction))
    if args.maps:
        print(synthetic_maps(data, vwork, s, args.maps_into, args.maps, args.maps_run,
                             with_utility=args.utility, maps_set=args.maps_set,
                             suffix="-" + args.maps_suffix.lstrip("-") if args.maps_suffix
                             else "", exclude=args.maps_exclude, augment=args.maps_augment,
                             augment_strength=args.maps_augment_strength))
        return 0
    if args.variants:
        text = variants(data, vwork, s, args.variants, args.only)
        if not args.only:
            (vwork / "variants.md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    results = {}
    for frac in [1.0, *s.low_data]:
        tag = "all" if frac == 1.0 else f"{round(frac * 100)}pct"  # run names: no '%'
        sub = data if frac == 1.0 else patient_subset(data, work / f"data-{tag}", frac)
        t = time.perf_counter()
        steps = s.gan_steps if frac == 1.0 else s.low_data_gan_steps
        run = train_pix2pix(sub, work / "runs", s, f"lgg-pix2pix-{tag}", steps)
        timings[f"pix2pix {tag}"] = time.perf_counter() - t
        t = time.perf_counter()
        pairs = make_pairs(run, sub, work / f"pairs-{tag}", s)
        timings[f"pairs {tag}"] = time.perf_counter() - t
        t = time.perf_counter()
        fs = s if args.epochs else replace(s, epochs=fraction_epochs(s.epochs, frac))
        results[f"{tag} train patients"] = utility(sub, pairs, work / "runs", fs, f"lgg-{tag}")
        timings[f"utility {tag}"] = time.perf_counter() - t
        t = time.perf_counter()
        results[f"{tag} train patients"]["feature_audit"] = feature_audit(
            sub, pairs, work / f"audit-{tag}")
        timings[f"audit {tag}"] = time.perf_counter() - t
    text = table(results, timings, s, args.quick)
    (work / "benchmark.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
