"""``synthmed evaluate`` and ``synthmed features train``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from synthmed.cli import app, console, err_console

features_app = typer.Typer(help="Feature extractors for FID/KID/PRDC: train the domain one.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(features_app, name="features")


def _fmt(value, ci=None) -> str:
    if value is None:
        return "-"
    text = f"{value:.4g}"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f"  [{ci[0]:.4g}, {ci[1]:.4g}]"
    return text


def _ci_label(m: dict, key: str) -> str:
    """'95% CI' only for an interval that was computed (never for --bootstrap 0)."""
    if m.get(f"{key}_ci_low") is None or m.get(f"{key}_ci_high") is None:
        return ""
    return f", {100 * (m.get('confidence') or 0.95):g}% CI"


def _per_class_table(pc: dict) -> None:
    if not pc:
        return
    console.print("  per class (- = not computed or too few real images; see metrics.json "
                  "per_class.*.unreliable)", markup=False)
    console.print(f"    {'class':<16} {'n_real':>6} {'rel. FD':>8} {'precision':>9} "
                  f"{'recall':>7} {'coverage':>8}", markup=False)
    for name, row in pc.items():
        console.print(f"    {name[:16]:<16} {_fmt(row.get('n_real')):>6} "
                      f"{_fmt(row.get('relative_fd')):>8} {_fmt(row.get('precision')):>9} "
                      f"{_fmt(row.get('recall')):>7} {_fmt(row.get('coverage')):>8}",
                      markup=False)


def _c2st(r: dict | None) -> str:
    if not r:
        return "-"
    floor = (r.get("floor") or {}).get("auc")
    return (f"{_fmt(r['auc'], (r['auc_ci_low'], r['auc_ci_high']))} ({_fmt(floor)}), "
            f"p {_fmt(r.get('p_value'))}")


def _spectral(s: dict | None) -> str:
    if not s:
        return "-"
    flag = "grid artefacts (see warnings)" if s.get("artefacts") else "ok"
    return f"{_fmt(s['distance'])} ({_fmt(s['distance_floor'])}), {flag}"


def _print_summary(m: dict, out: Path) -> None:
    from synthmed.metrics.verdict import lines

    for notice in m.get("notices") or []:
        console.print(notice, markup=False)
    console.print(f"[bold]{m['extractor'] or 'no'} features[/bold]: n_real={m['n_real']}, "
                  f"n_synthetic={m['n_synthetic']}, n_train={m['n_train']}")
    rows = [
        ("FID (plain, biased up at small n)", _fmt(m["fid"])),
        (f"FID bias-corrected{_ci_label(m, 'fid')}",
         _fmt(m.get("fid_corrected"), (m["fid_ci_low"], m["fid_ci_high"]))),
        ("FID real-vs-real floor", _fmt(m["fid_real_real"])),
        ("relative FD (1 = floor; full-n)",
         f"{_fmt(m['relative_fd'])} ({_fmt(m.get('relative_fd_full_n'))})"),
        ("KID mean ± std", f"{_fmt(m['kid_mean'])} ± {_fmt(m['kid_std'])}"),
        (f"KID all pairs{_ci_label(m, 'kid')}",
         _fmt(m.get("kid_all_pairs"), (m["kid_ci_low"], m["kid_ci_high"]))),
        ("IS mean ± std (real)", f"{_fmt(m['is_mean'])} ± {_fmt(m['is_std'])} "
                                 f"({_fmt(m['is_real_mean'])})"),
        ("precision / recall", f"{_fmt(m['precision'])} / {_fmt(m['recall'])}"),
        ("density / coverage", f"{_fmt(m['density'])} / {_fmt(m['coverage'])}"),
        ("C2ST AUC (real-vs-real floor), p", _c2st(m.get("realism"))),
        ("spectral distance (floor), grid", _spectral(m.get("spectral"))),
        ("MS-SSIM synthetic (real)", f"{_fmt(m['ms_ssim'])} ({_fmt(m['ms_ssim_real'])})"),
        ("copy rate pixel / features", f"{_fmt(m['copy_rate'])} / {_fmt(m['copy_rate_features'])}"),
        ("membership AUC pixel / features",
         f"{_fmt(m['membership_auc'])} / {_fmt(m['membership_auc_features'])}"),
    ]
    lc = m.get("label_consistency")
    if lc:
        rows += [
            ("label consistency: Dice synth / real",
             f"{_fmt(lc['synthetic']['dice'])} / {_fmt(lc['real_test']['dice'])} "
             f"(ratio {_fmt(lc['dice_ratio'])})"),
            ("lesions found synth / real", f"{_fmt(lc['synthetic']['detection_rate'])} / "
                                           f"{_fmt(lc['real_test']['detection_rate'])}")]
    for name, value in rows:
        console.print(f"  {name:<36} {value}", markup=False)
    _per_class_table(m.get("per_class") or {})
    for w in m["warnings"]:
        err_console.print(f"warning: {w}", markup=False)
    console.print(f"metrics: {out / 'metrics.json'}")
    for line in lines(m["verdict"]):
        console.print(line, markup=False, soft_wrap=True)


_BOOT = "Subsamples for the FID/KID intervals, resamples for PRDC's (0: no intervals)."
_REAL = "Held-out real images: DATASET_DIR[:split] (default split test)."
_SYN = ("A synthetic set (synthmed generate), DATASET_DIR[:split], a folder of PNG/JPEG/DICOM "
        "images (class subfolders = classes) or an .npz (images, labels, class_names).")
_TRAIN = ("What the generator trained on (privacy audit, domain extractor): DATASET_DIR:train; "
          "default REAL's train split.")
_FEATS = "domain | inception | both | comma list of registered names."
_METRICS = ("Comma list of fid,kid,is,prdc,ms_ssim,privacy,c2st,spectral,labels (default all; "
            "labels: the label consistency of an image+mask pair set).")
_SEG = ("Label-consistency segmenter file (default: train one on --train, cached; "
        "see synthmed.metrics.consistency).")
_EXTRACTOR = ("A domain extractor file (synthmed features train); default: train one on --train, "
              "or reuse the cached one.")
_CACHE = "Feature cache (default $SYNTHMED_CACHE or ~/.cache/synthmed)."
_MODULE = ("pkg.module:factory: import it and register factory()'s nn.Module or FeatureExtractor "
           "(used when --features is not given); pkg.module alone just imports it.")
_SIZE = "Input side for a TorchScript or --extractor-module network (default: the images' size)."
_CH = "Input channels for a TorchScript or --extractor-module network (default 1; 3 repeats gray)."


@app.command("evaluate")
def evaluate_cmd(
    real: str = typer.Option(..., "--real", help=_REAL),
    synthetic: str = typer.Option(..., "--synthetic", help=_SYN),
    out: Path = typer.Option(..., "--out", help="Folder for metrics.json and plots."),
    train: str = typer.Option(None, "--train", help=_TRAIN),
    features: str = typer.Option(None, "--features", help=_FEATS + " Default: domain."),
    metrics: str = typer.Option(None, "--metrics", help=_METRICS),
    extractor: Path = typer.Option(None, "--extractor", help=_EXTRACTOR),
    extractor_module: str = typer.Option(None, "--extractor-module", help=_MODULE),
    input_size: int = typer.Option(None, "--input-size", min=1, help=_SIZE),
    in_channels: int = typer.Option(None, "--in-channels", min=1, help=_CH),
    inception_weights: Path = typer.Option(None, "--inception-weights",
                                           help="FID Inception-v3 weights (torch-fidelity .pth)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help=_CACHE),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, subsets and bootstrap."),
    n_bootstrap: int = typer.Option(100, "--bootstrap", help=_BOOT),
    extractor_epochs: int = typer.Option(15, "--extractor-epochs",
                                         help="Epochs when a domain extractor must be trained."),
    device: str = typer.Option("auto", "--device", help="Device for the feature networks: auto "
                               "(a GPU when there is one), cpu, cuda, cuda:N or mps."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Only metrics.json and nearest.csv."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
    segmenter: Path = typer.Option(None, "--segmenter", help=_SEG),
    segmenter_epochs: int = typer.Option(10, "--segmenter-epochs", min=1,
                                         help="Epochs when the segmenter must be trained."),
) -> None:
    """Fidelity (FID, KID, IS, precision/density), diversity (recall/coverage; MS-SSIM as a
    check on realistic sets only) and privacy (copies, membership)."""
    from synthmed.metrics.evaluate import evaluate
    from synthmed.metrics.features import import_extractor

    custom = import_extractor(extractor_module, input_size=input_size,
                              in_channels=in_channels or 1) if extractor_module else None
    m = evaluate(real, synthetic, train=train, features=features or custom or "domain",
                 metrics=metrics, extractor=extractor, out=out, seed=seed,
                 inception_weights=inception_weights, cache_dir=cache_dir,
                 n_bootstrap=n_bootstrap, extractor_epochs=extractor_epochs,
                 plots=not no_plots, device=device, input_size=input_size,
                 in_channels=in_channels, segmenter=segmenter,
                 segmenter_epochs=segmenter_epochs)
    if as_json:
        typer.echo(json.dumps(m, indent=2))
    else:
        _print_summary(m, out)


@features_app.command("train")
def features_train(
    dataset: Path = typer.Argument(..., help="A prepared dataset directory."),
    split: str = typer.Option("train", "--split", help="Split to train on."),
    out: Path = typer.Option(None, "--out", help="Extractor file (default: the cache)."),
    epochs: int = typer.Option(15, "--epochs", help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Random seed (deterministic per seed)."),
    mode: str = typer.Option("auto", "--mode",
                             help="auto (simclr+supervised when labelled, else simclr) | "
                                  "simclr | simclr+supervised | supervised."),
    image_size: int = typer.Option(None, "--image-size",
                                   help="Input side (default: the data's, at most 64)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Cache folder."),
    force: bool = typer.Option(False, "--force", help="Retrain even when cached."),
) -> None:
    """Train the domain feature extractor on a real training split (offline, seconds on CPU)."""
    from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor
    from synthmed.metrics.sanity import summary_line

    path = train_domain_extractor(dataset, split, epochs=epochs, seed=seed, out=out, mode=mode,
                                  image_size=image_size, cache_dir=cache_dir, force=force)
    ex = load_domain_extractor(path)
    console.print(f"domain extractor ({ex.info['mode']}, {ex.info['feature_dim']}-d features, "
                  f"input {ex.input_size[0]}x{ex.input_size[1]}): {path}")
    console.print(f"weights sha256: {ex.weights_sha256[:16]}")
    sanity = ex.info.get("sanity")
    if sanity and sanity.get("passed"):
        console.print(summary_line(sanity), markup=False)
    else:
        err_console.print(f"warning: {summary_line(sanity)}", markup=False)
