"""``synthmed data ...``: phantom, import, info, export."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from synthmed.cli import app, console

data_app = typer.Typer(help="Prepare datasets: phantom, import, info, export.",
                       no_args_is_help=True)
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
    console.print(f"{s['n']} images, {s['size'][0]}x{s['size'][1]}, {s['channels']} channel(s), "
                  f"{s['dtype']}, {s['n_groups']} groups, masks: {s['n_masks'] if s['has_masks'] else 'none'}")
    table = Table("class", *s["splits"].keys(), "total")
    by_split = s.get("class_counts_by_split", {})
    for name, total in s["classes"].items():
        table.add_row(name, *(str(by_split.get(sp, {}).get(name, "")) for sp in s["splits"]), str(total))
    table.add_row("[bold]all[/bold]", *(str(v) for v in s["splits"].values()), str(s["n"]))
    console.print(table)
    if s["preprocessing"]:
        console.print("preprocessing: " + ", ".join(f"{k}={v}" for k, v in s["preprocessing"].items()))
    console.print(f"content hash: {s['content_hash'][:16]}")
