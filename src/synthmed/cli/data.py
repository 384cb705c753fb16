"""``synthmed data ...``: phantom, import, info, export, labelmaps (each a thin wrapper over
synthmed.data / synthmed.sampling.labelmaps)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from synthmed.cli import app, console

Opt = typer.Option

data_app = typer.Typer(help="Prepare datasets: phantom, import, info, export, labelmaps.",
                       no_args_is_help=True, rich_markup_mode=None)
app.add_typer(data_app, name="data")


@data_app.command("phantom")
def phantom(
    out: Path = typer.Option(..., "--out", help="Folder to write the raw phantom into."),
    n: int = typer.Option(600, "--n", help="Number of images."),
    size: int = typer.Option(64, "--size", help="Side length in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed (deterministic per seed)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write the built-in ultrasound-like phantom (NOT real data) as PNGs, masks and labels.csv."""
    from synthmed.data.phantom import write_phantom

    path = write_phantom(out, n=n, size=size, seed=seed, force=force)
    console.print(f"phantom: {n} images ({size}x{size}, seed {seed}) written to {path}")


@data_app.command("labelmaps")
def labelmaps(
    dataset: Path = typer.Argument(..., help="A prepared dataset directory with masks."),
    out: Path = typer.Option(..., "--out", help="Folder for the label-map dataset."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it is a prepared dataset."),
    augment: int = typer.Option(0, "--augment", min=0, help="Add K randomly moved (flip, rotate, "
                                "scale, shift) copies of every training map, so a map generator "
                                "trained on few patients does not draw their heads."),
    augment_strength: float = typer.Option(1.0, "--augment-strength", min=0.0, help="With "
                                           "--augment: multiply the move ranges; above 1 also "
                                           "warp the head outline (2: LGG at 10 % of patients)."),
) -> None:
    """Label maps (background 0, head 127, lesion 255) of a dataset with masks, as a dataset an
    unconditional generator trains on; its samples feed generate --masks-from-run."""
    from synthmed.sampling.labelmaps import write_labelmap_dataset

    path = write_labelmap_dataset(dataset, out, force=force, augment=augment,
                                  augment_strength=augment_strength)
    console.print(f"label maps: {path}  (train an unconditional generator on it, e.g. "
                  "configs/lgg_labelmaps.yaml)")


@data_app.command("info")
def info(
    dataset: Path = typer.Argument(..., help="A prepared dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Summarize a prepared dataset."""
    from synthmed.data.dataset import PreparedDataset

    s = PreparedDataset(dataset).summary()
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    console.print(f"[bold]{s['name']}[/bold]  {s['path']}")
    masks = s["n_masks"] if s["has_masks"] else "none"
    console.print(f"{s['n']} images, {s['size'][0]}x{s['size'][1]}, {s['channels']} channel(s), "
                  f"{s['dtype']}, {s['n_groups']} groups, masks: {masks}")
    table = Table("class", *s["splits"].keys(), "total")
    by_split = s.get("class_counts_by_split", {})
    for name, total in s["classes"].items():
        counts = (str(by_split.get(sp, {}).get(name, "")) for sp in s["splits"])
        table.add_row(name, *counts, str(total))
    table.add_row("[bold]all[/bold]", *(str(v) for v in s["splits"].values()), str(s["n"]))
    console.print(table)
    if s["preprocessing"]:
        from synthmed.data.preprocess import describe_short

        console.print("preprocessing: " + describe_short(s["preprocessing"]), markup=False)
    if isinstance(s["split"], dict) and s["split"].get("groups"):
        console.print(f"split: {s['split'].get('method')}; groups: {s['split']['groups']}",
                      markup=False)
    console.print(f"content hash: {s['content_hash'][:16]}")


def _warnings_to_stderr() -> None:
    """Show the data layer's notices (skipped files, conversions) as `warning: ...` lines."""
    import logging

    from synthmed.cli import err_console

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            err_console.print(f"warning: {record.getMessage()}", markup=False)

    logger = logging.getLogger("synthmed.data")
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        logger.addHandler(_Handler())
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    from synthmed.errors import DataError

    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise DataError(f"{option} {text!r}: expected comma-separated numbers") from None


@data_app.command("import")
def import_(
    source: Path | None = typer.Argument(
        None, help="Folder of images/DICOM/NIfTI (class subfolders = labels), one file, or an "
        ".npz (MedMNIST or generic). With --medmnist: the download folder."),
    out: Path = Opt(..., "--out", help="Prepared dataset directory to create."),
    labels_csv: Path | None = Opt(
        None, "--labels-csv", help="CSV path,label[,group][,split]; paths relative to SOURCE."),
    no_labels: bool = Opt(False, "--no-labels", help="Import without labels."),
    class_names: str | None = Opt(
        None, "--class-names",
        help="Name labels: 0=benign,1=malignant (or benign,malignant to fix the order)."),
    drop_label: list[str] = Opt(
        [], "--drop-label", help="Leave out images with this raw label (repeatable): "
        "--drop-label=-1."),
    mask_dir: Path | None = Opt(None, "--mask-dir", help="Masks at the images' relative paths."),
    mask_suffix: str | None = Opt(
        None, "--mask-suffix", help="Masks beside images: a.png + a_mask.png (use _mask)."),
    group_regex: str | None = Opt(
        None, "--group-regex", help="Patient group = first capture group on the file stem/path."),
    npz_key: list[str] = Opt(
        [], "--npz-key", help="Map an npz role to a key: labels=label_binary (repeatable)."),
    medmnist: str | None = Opt(
        None, "--medmnist", help="Download this MedMNIST set (needs the medmnist package)."),
    medmnist_size: int = Opt(28, "--medmnist-size", help="MedMNIST size: 28, 64, 128 or 224."),
    axis: int = Opt(2, "--axis", help="NIfTI axis to slice along."),
    nifti_rgb: bool = Opt(
        False, "--nifti-rgb", help="Read a 4-D NIfTI (X,Y,Z,3) as RGB; default: 3 volumes."),
    skip_empty_slices: bool = Opt(
        False, "--skip-empty-slices",
        help="Drop frames whose mask is empty (without masks: frames that are constant)."),
    size: int | None = Opt(None, "--size", help="Resize to SIZE x SIZE pixels."),
    keep_aspect: bool = Opt(False, "--keep-aspect", help="Pad to square instead of stretching."),
    channels: int | None = Opt(None, "--channels", help="1 or 3; default: the inputs' majority."),
    normalize: str = Opt(
        "auto", "--normalize", help="auto | none | minmax | percentile | zscore | window."),
    percentiles: str = Opt("0.5,99.5", "--percentiles", help="LOW,HIGH for percentile."),
    window: str | None = Opt(None, "--window", help="CT window CENTER,WIDTH in HU: 40,400."),
    filter_: str = Opt("none", "--filter", help="Denoise: none | gaussian | median | bilateral."),
    filter_sigma: float = Opt(1.0, "--filter-sigma", help="Gaussian sigma in pixels."),
    filter_size: int = Opt(3, "--filter-size", help="Median window size (odd)."),
    sigma_color: float = Opt(0.1, "--sigma-color", help="Bilateral range sigma (0-1 scale)."),
    sigma_space: float = Opt(1.5, "--sigma-space", help="Bilateral spatial sigma in pixels."),
    bit_depth: int = Opt(8, "--bit-depth", help="Output 8 (uint8) or 16 (uint16) bits."),
    split: str | None = Opt(None, "--split", help="train,val,test fractions [0.8,0.1,0.1]."),
    seed: int = Opt(0, "--seed", help="Split seed."),
    resplit: bool = Opt(False, "--resplit", help="Ignore official splits; split by group."),
    allow_missing_class: bool = Opt(
        False, "--allow-missing-class",
        help="Accept a class with too few patients to appear in val and test (a notice)."),
    name: str | None = Opt(None, "--name", help="Dataset name (default: OUT's folder name)."),
    force: bool = Opt(False, "--force", help="Replace OUT if it exists."),
    skip_bad: bool = Opt(False, "--skip-bad", help="Skip unreadable files with a warning."),
) -> None:
    """Import raw images (PNG/JPEG/BMP/TIFF, DICOM, NIfTI, MedMNIST/npz) as a prepared dataset."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.data.importer import import_dataset

    _warnings_to_stderr()
    path = import_dataset(
        source, out, labels_csv=labels_csv, no_labels=no_labels, class_names=class_names,
        drop_labels=drop_label, mask_dir=mask_dir, mask_suffix=mask_suffix,
        group_regex=group_regex, npz_keys=npz_key, medmnist=medmnist, medmnist_size=medmnist_size,
        axis=axis, skip_empty_slices=skip_empty_slices, size=size, keep_aspect=keep_aspect,
        channels=channels, normalize=normalize, percentiles=_floats(percentiles, "--percentiles"),
        window=window, filter=filter_, filter_sigma=filter_sigma, filter_size=filter_size,
        sigma_color=sigma_color, sigma_space=sigma_space, bit_depth=bit_depth, split=split,
        seed=seed, resplit=resplit, name=name, force=force, skip_bad=skip_bad,
        allow_missing_class=allow_missing_class, nifti_rgb=nifti_rgb)
    s = PreparedDataset(path).summary()
    splits = ", ".join(f"{k} {v}" for k, v in s["splits"].items())
    console.print(f"imported {s['n']} images ({s['size'][0]}x{s['size'][1]}, {s['channels']} "
                  f"channel(s), {len(s['classes'])} classes; {splits}) into {path}")


@data_app.command("export")
def export(
    dataset: Path = typer.Argument(..., help="A prepared dataset directory."),
    fmt: str = typer.Option("png", "--format", help="png | dicom | nifti."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    split: str = typer.Option("all", "--split", help="train | val | test | all."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Export a prepared dataset as PNG, DICOM (Secondary Capture, anonymous) or NIfTI files."""
    from synthmed.data.export import export_dataset

    path = export_dataset(dataset, out, fmt, split=split, force=force)
    console.print(f"exported {split} as {fmt} to {path}")
