"""The report adapts to the generator kind from the run directory's files alone: every logged
``loss_*`` curve, mask | image rows for a paired (mask-to-image) set, a segmentation Dice table,
and a diffusion run's sampling options. Hand-made tiny run directories; no training."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from synthmed.report import collect, render_report
from synthmed.report import figures as fg


def _marker(rd: Path, stage: str, outputs: dict) -> None:
    (rd / "stages").mkdir(parents=True, exist_ok=True)
    (rd / "stages" / f"{stage}.json").write_text(json.dumps(
        {"stage": stage, "outputs": outputs, "seconds": 1.0, "finished": "2026-01-01T00:00"}))


def _train(rd: Path, model: str, losses: dict[str, float]) -> None:
    run = rd / "train" / "run1"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": model},
                                                     "train": {"steps": 20, "seed": 0}}))
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, **{k: v / s for k, v in losses.items()}}) + "\n"
        for s in (5, 10, 15, 20)))
    _marker(rd, "train", {"train_run": "train/run1"})


def _data(rd: Path, masks: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (4, 1, 16, 16), dtype=np.uint8)
    (rd / "data").mkdir(parents=True)
    (rd / "data" / "summary.json").write_text(json.dumps(
        {"name": "tiny", "path": "tiny", "n": 4, "splits": {"train": 4}, "classes": {},
         "size": [16, 16], "channels": 1, "n_groups": 0, "source": None,
         "has_masks": masks, "n_masks": 4 if masks else 0}))
    m = np.zeros((4, 16, 16), np.uint8)
    m[:, 4:9, 4:9] = 1
    extra = {"masks": m} if masks else {}
    np.savez_compressed(rd / "data" / "real_samples.npz", images=imgs,
                        labels=np.full(4, -1), class_names=np.array([], dtype=str), **extra)
    _marker(rd, "data", {"summary": "data/summary.json"})
    return imgs


def _synthetic(rd: Path, paired: bool, gen_extra: dict) -> None:
    syn = rd / "generate" / "synthetic"
    (syn / "images").mkdir(parents=True)
    (syn / "masks").mkdir()
    rows = []
    for seed in range(3):
        Image.fromarray(np.full((16, 16), 40 * seed + 20, np.uint8)).save(
            syn / "images" / f"seed{seed}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[2:6 + seed, 2:6] = 255
        Image.fromarray(mask).save(syn / "masks" / f"seed{seed}.png")
        rows.append({"file": f"images/seed{seed}.png", "mask_file": f"masks/seed{seed}.png",
                     "class": "", "seed": seed, "source_id": f"case{seed}", "source_row": seed,
                     "anatomy_id": "", "edit": json.dumps({"rotate": 12.5, "flip": "h"}),
                     "rejected_edits": 0})
    cols = list(rows[0]) if paired else ["file", "class", "seed"]
    with open(syn / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (syn / "generation.json").write_text(json.dumps(
        {"n": 3, "class_names": [], "classes": {}, "step": 20, "ema": False, **gen_extra}))
    _marker(rd, "generate", {"synthetic": "generate/synthetic"})


def test_every_logged_loss_is_plotted_with_a_readable_name():
    records = [{"step": 1, "loss_d": 1.0, "loss_g": 2.0, "loss_l1": 3.0, "loss_my_term": 0.5},
               {"step": 2, "loss_d": 0.9, "loss_g": 1.9, "loss_l1": 2.5, "loss_my_term": 0.4}]
    assert fg.loss_keys(records) == ["loss_d", "loss_g", "loss_l1", "loss_my_term"]
    assert [fg.loss_label(k) for k in fg.loss_keys(records)] == [
        "discriminator", "generator", "L1 (pix2pix)", "my term"]
    assert fg.loss_label("loss_rec") == "reconstruction"  # the VAE's
    assert fg.loss_label("loss_kl") == "KL divergence"
    assert fg.curves_uri(records, None).startswith("data:image/png;base64,")
    assert fg.curves_uri([{"step": 1, "img_per_s": 3.0}], None) is None


def test_diffusion_run_shows_its_loss_model_kind_and_sampling_options(tmp_path):
    _data(tmp_path, masks=False)
    _train(tmp_path, "ddpm", {"loss_diffusion": 1.0})
    _synthetic(tmp_path, paired=False, gen_extra={
        "model": "ddpm", "sampling_options": {"steps": 50, "guidance": 2.0, "bf16": None}})
    tr = collect.training_section(tmp_path, collect.stages(tmp_path))
    assert tr["curves"] and tr["losses"] == ["diffusion (noise or v MSE)"]
    assert tr["steps_done"] == 20
    html = render_report(tmp_path)
    assert "diffusion model (DDPM)" in html and "diffusion (noise or v MSE)" in html
    assert re.search(r"<dt>sampling steps</dt><dd>50</dd>", html)
    assert re.search(r"<dt>guidance scale</dt><dd>2.0</dd>", html)
    assert "bfloat16" not in html  # an option left unset is not shown
    assert "mask | real image" not in html


def test_paired_set_shows_mask_rows_and_edits(tmp_path):
    _data(tmp_path, masks=True)
    _train(tmp_path, "pix2pix", {"loss_d": 1.0, "loss_g": 2.0, "loss_l1": 3.0})
    _synthetic(tmp_path, paired=True, gen_extra={"paired": True, "edit": {"rotate": [-15, 15]}})
    syn = collect.synthetic_section(tmp_path, collect.stages(tmp_path),
                                    collect.dataset_section(tmp_path))
    assert syn["paired"]
    row = syn["classes"][0]
    assert row["real_pairs"] and row["synthetic_pairs"]
    assert [e["source"] for e in row["edits"]] == ["case0", "case1", "case2"]
    assert row["edits"][0]["edit"] == "rotate 12.5; flip h"
    html = render_report(tmp_path)
    assert "mask given | synthetic image" in html and "mask | real image" in html
    assert "rotate -15, 15" in html and "L1 (pix2pix)" in html
    assert "mask-to-image GAN (pix2pix)" in html


def test_pairs_grid_is_mask_then_image_per_row():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[:, :2] = 1
    imgs = np.full((2, 1, 4, 4), 100, np.uint8)
    tiles = fg.mask_tiles(masks, 1)
    assert tiles.shape == (2, 1, 4, 4) and tiles.max() == 255 and tiles.min() == 0
    assert fg.pairs_uri(masks, imgs).startswith("data:image/png;base64,")
    assert fg.pairs_uri(masks[:0], imgs[:0]) is None


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_utility_table_follows_the_task(tmp_path, task):
    metrics = ("dice", "iou", "hd95") if task == "segmentation" else ("auc", "accuracy")
    summary = [{"arm": arm, "ratio": 0, "metric": m, "mean": 0.5, "ci95": [0.4, 0.6], "n": 2}
               for arm in ("real", "real+synthetic") for m in metrics]
    (tmp_path / "utility").mkdir()
    (tmp_path / "utility" / "utility.json").write_text(json.dumps(
        {"task": task, "model": "unet", "primary_metric": metrics[0], "seeds": [0, 1],
         "summary": summary, "comparisons": [], "result_lines": [], "files": []}))
    _marker(tmp_path, "utility", {"utility": "utility/utility.json"})
    html = render_report(tmp_path)
    has_seg = ">HD95 (px)<" in html and ">IoU<" in html and ">Dice<" in html
    assert has_seg == (task == "segmentation")
    assert ("Segmentation per arm" in html) == (task == "segmentation")


def test_paired_set_shows_label_consistency_beside_the_audit(tmp_path):
    _data(tmp_path, masks=True)
    _train(tmp_path, "pix2pix", {"loss_d": 1.0, "loss_g": 2.0, "loss_l1": 3.0})
    _synthetic(tmp_path, paired=True, gen_extra={"paired": True})
    block = {"n": 3, "dice": 0.5, "iou": 0.4, "detection_rate": 0.667}
    lc = {"dice_ratio": 0.781, "detect_fraction": 0.25, "synthetic": block,
          "real_test": {**block, "dice": 0.64, "n": 7},
          "by_edit": {"rotate": {**block, "dice": 0.123}},
          "segmenter": {"arch": "monai.BasicUNet", "seed": 1009, "val_dice": 0.7}}
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps(
        {"label_consistency": lc, "membership_auc": 0.612, "copy_rate": 0.05}))
    _marker(tmp_path, "evaluate", {"metrics": "evaluate/metrics.json"})
    html = render_report(tmp_path)
    assert "Label consistency" in html and "<strong>0.781</strong>" in html
    assert "edit: rotate" in html and "0.123" in html and "monai.BasicUNet seed 1009" in html
    assert "membership AUC pixels 0.612" in html
