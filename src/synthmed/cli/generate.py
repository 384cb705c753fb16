"""``synthmed generate RUN_DIR --n N --out DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli import app, console

_TRAIN = ("With --exclude-near-copies: the training images to compare with, DATASET_DIR[:split] "
          "(default: the run's dataset and split).")


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
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N"),
    exclude_near_copies: bool = typer.Option(
        False, "--exclude-near-copies", help="Drop images too close to a training image."),
    train: str = typer.Option(None, "--train", help=_TRAIN),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty OUT."),
    size: int = typer.Option(None, "--size", help="Image side in px (default: the training size)."),
    match_train: bool = typer.Option(
        False, "--match-train", help="With --n: class counts follow the training split's."),
    steps: int = typer.Option(None, "--steps", help="Diffusion models: DDIM steps "
                              "(default: the run's model.sample_steps, 50)."),
    guidance: float = typer.Option(None, "--guidance", help="Diffusion models: classifier-free "
                                   "guidance scale (0 unconditional, 1 conditional; default: the "
                                   "run's model.guidance)."),
    bf16: bool = typer.Option(None, "--bf16", help="Diffusion models: bf16 network on devices "
                              "with native bf16 (faster; images differ slightly from float32)."),
) -> None:
    """Generate a synthetic set; each image is reproducible from checkpoint + class + seed."""
    from synthmed.sampling.writer import write_synthetic

    path = write_synthetic(run_dir, out, n=n, per_class=per_class, class_name=class_name,
                           seeds=seeds, checkpoint=checkpoint, fmt=fmt, device=device,
                           force=force, exclude_near_copies=exclude_near_copies,
                           train_dataset=train, size=size, match_train=match_train,
                           steps=steps, guidance=guidance, bf16=bf16 or None)
    console.print(f"synthetic set: {path}  (manifest.csv, generation.json)")
