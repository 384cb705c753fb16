"""``synthmed generate RUN_DIR --n N --out DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli import app, console

_TRAIN = ("With --exclude-near-copies: the training images to compare with, DATASET_DIR[:split] "
          "(default: the run's dataset and split).")


_MASKS = ("Mask-conditioned runs (pix2pix, ddpm-mask): make image+mask pairs from the masks of "
          "DATASET_DIR[:split] (default split: train; val/test need --allow-eval-masks).")
_MAPS_RUN = ("Mask-conditioned runs: make image+mask pairs from label maps sampled by this "
             "unconditional run (trained on synthmed data labelmaps): no real mask or slice.")
_EDIT = ("With --masks-from, repeatable: translate=F|LO:HI, rotate=DEG|LO:HI, scale=LO:HI, "
         "flip=h|v|hv, elastic=ALPHA[:SIGMA], transplant (see docs/training.md).")


_CALIBRATION = ("With --masks-from-run --exclude-near-copies: patients (default; a map is "
                "dropped when closer to its nearest training map than that map is to any other "
                "training patient's map, ADS-GAN) or val (closer than the val patients' 5th "
                "percentile). The test split is never read.")
_OPTION = ("Repeatable KEY=VALUE: a generation option of the run's model (docs/training.md; "
           "diffusion: steps, guidance, bf16). Values are read as YAML, like --set.")


def parse_options(texts: list[str] | None, flags: dict[str, object]) -> dict[str, object]:
    """``--option KEY=VALUE`` pairs plus the short flags that were given, as one mapping (the
    run's method validates them: an unknown option is one line naming it and the choices)."""
    from synthmed.config import parse_override
    from synthmed.errors import SynthmedError

    out = {k: v for k, v in flags.items() if v is not None}
    for text in texts or []:
        if "=" not in text:
            raise SynthmedError(f"--option {text!r}: expected KEY=VALUE, e.g. --option steps=20")
        parts, value = parse_override(text)
        key = ".".join(parts)
        if key in out and out[key] != value:
            raise SynthmedError(f"--option {key}: given twice with different values")
        out[key] = value
    return out


@app.command("generate")
def generate_cmd(
    run_dir: Path = typer.Argument(..., help="A training run directory."),
    out: Path = typer.Option(..., "--out", help="Folder for the synthetic set."),
    n: int = typer.Option(None, "--n", help="Number of images (seeds 0..N-1)."),
    per_class: int = typer.Option(None, "--per-class", help="N images of every class."),
    class_name: str = typer.Option(None, "--class", help="Only this class."),
    seeds: str = typer.Option(None, "--seeds", help="Seeds, e.g. 0-549 or 1,5,9."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest or step-XXXXXXXX."),
    fmt: str = typer.Option("png", "--format", help="png | npz | dicom"),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, "
                               "cuda, cuda:N or mps"),
    exclude_near_copies: bool = typer.Option(
        False, "--exclude-near-copies", help="Drop images too close to a training image; with "
        "--masks-from-run: drop sampled label maps that identify a training patient's map."),
    near_copy_calibration: str = typer.Option(
        None, "--near-copy-calibration", help=_CALIBRATION),
    near_copy_quantile: float = typer.Option(
        None, "--near-copy-quantile", help="With --near-copy-calibration val: the quantile of "
        "the val patients' nearest-training distances (default 0.05; larger drops more)."),
    train: str = typer.Option(None, "--train", help=_TRAIN),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty OUT."),
    size: int = typer.Option(None, "--size", help="Image side in px (default: the training size)."),
    match_train: bool = typer.Option(
        False, "--match-train", help="Class counts follow the training split's; alone (no "
        "--n/--seeds): as many images as the training split."),
    option: list[str] = typer.Option(None, "--option", help=_OPTION),
    steps: int = typer.Option(None, "--steps", help="Short for --option steps=N (diffusion: "
                              "solver steps = network evaluations; default: the run's "
                              "model.sample_steps, 20)."),
    sampler: str = typer.Option(None, "--sampler", help="Short for --option sampler=NAME "
                                "(diffusion: dpm-solver++, made for ~20 steps, or ddim, 50-200; "
                                "default: the run's model.sampler)."),
    guidance: float = typer.Option(None, "--guidance", help="Short for --option guidance=S "
                                   "(diffusion: classifier-free guidance scale, 0 unconditional, "
                                   "1 conditional; default: the run's model.guidance)."),
    bf16: bool = typer.Option(None, "--bf16", help="Short for --option bf16=true (diffusion: "
                              "bf16 network on devices with native bf16)."),
    masks_from: str = typer.Option(None, "--masks-from", help=_MASKS),
    masks_from_run: Path = typer.Option(None, "--masks-from-run", help=_MAPS_RUN),
    edit: list[str] = typer.Option(None, "--edit", help=_EDIT),
    allow_eval_masks: bool = typer.Option(
        False, "--allow-eval-masks", help="Allow --masks-from a val/test split (on purpose)."),
) -> None:
    """Generate a synthetic set; each image is reproducible from checkpoint + class + seed
    (with --masks-from: image+mask pairs, reproducible from checkpoint + mask + edit + seed)."""
    from synthmed.errors import SynthmedError
    from synthmed.sampling.writer import write_synthetic

    options = parse_options(option, {"steps": steps, "guidance": guidance,
                                     "bf16": bf16 or None, "sampler": sampler})
    if masks_from_run is not None:
        from synthmed.sampling.labelmaps import write_pairs_from_maps

        if masks_from is not None or edit or allow_eval_masks or options or per_class \
                is not None or class_name is not None or train \
                or size is not None or match_train:
            raise SynthmedError("--masks-from-run: only --n/--seeds, --checkpoint, --format, "
                                "--device, --exclude-near-copies, --near-copy-calibration and "
                                "--force apply; drop the other options")
        if near_copy_calibration is not None and not exclude_near_copies:
            raise SynthmedError("--near-copy-calibration: only with --exclude-near-copies")
        if near_copy_quantile is not None and near_copy_calibration != "val":
            raise SynthmedError("--near-copy-quantile: only with --near-copy-calibration val")
        path = write_pairs_from_maps(
            run_dir, out, maps_run=masks_from_run, n=n, seeds=seeds, checkpoint=checkpoint,
            fmt=fmt, device=device, force=force,
            exclude_near_copies=(near_copy_calibration or "patients") if exclude_near_copies
            else None, near_copy_quantile=near_copy_quantile)
        console.print(f"image+mask pairs from synthetic label maps: {path}  (manifest.csv, "
                      "generation.json)")
        return
    if masks_from is not None:
        from synthmed.sampling.pairs import write_pairs

        if per_class is not None or class_name is not None or exclude_near_copies or train \
                or size is not None or match_train:
            raise SynthmedError("--masks-from: --per-class, --class, --exclude-near-copies, "
                                "--train, --size and --match-train do not apply to image+mask "
                                "pairs; drop them")
        path = write_pairs(run_dir, out, masks_from=masks_from, n=n, seeds=seeds, edits=edit,
                           checkpoint=checkpoint, fmt=fmt, device=device, force=force,
                           allow_eval_masks=allow_eval_masks, **options)
        console.print(f"image+mask pairs: {path}  (manifest.csv, generation.json)")
        return
    if near_copy_calibration is not None or near_copy_quantile is not None:
        raise SynthmedError("--near-copy-calibration/--near-copy-quantile: only with "
                            "--masks-from-run")
    if edit or allow_eval_masks:
        raise SynthmedError("--edit/--allow-eval-masks: only with --masks-from DATASET_DIR")

    path = write_synthetic(run_dir, out, n=n, per_class=per_class, class_name=class_name,
                           seeds=seeds, checkpoint=checkpoint, fmt=fmt, device=device,
                           force=force, exclude_near_copies=exclude_near_copies,
                           train_dataset=train, size=size, match_train=match_train, **options)
    console.print(f"synthetic set: {path}  (manifest.csv, generation.json)")
