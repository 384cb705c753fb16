"""Is the LGG membership audit calibrated at 10 % / 25 % of the training patients? (issue 21)

The audit (``synthmed evaluate --metrics privacy``) scores every real image by its distance to the
nearest synthetic image and asks how well that tells training patients (members) from the test
patients. In features it uses the domain extractor trained on the *training split*, i.e. on the
members themselves. This script measures what the audit says for sets that cannot leak:

- null controls: real slices of patients the generator never saw, audited as if synthetic: the
  val patients' slices, and as many slices of training patients that the fraction left out
  (patients of the full training split outside the subset). Their true membership AUC is 0.5;
- a positive control: every training slice blurred (1.5 px) plus noise, a generator that
  memorized every member: a space that cannot see it is no audit;
- every given pair set, with two domain extractors: the default one (trained on the training
  split) and one trained on the **val** patients (neither members nor the audit's held-out side;
  ``synthmed features train DATA:val --out ext.pt`` then ``evaluate --extractor ext.pt``);
- for each (d) pair set, the **decoded** label maps it was made from (what the image generator
  saw; after an identifiability filter only the kept ones), against the training maps, beside
  the val patients' maps as the null (segmentation_lgg.py audits the raw map-generator samples).

Writes ``WORK/lgg-variants-PCTpct/privacy-control.md`` (``--fraction 1``: all patients,
``WORK/lgg-variants``, no left-out null). Usage (after
``segmentation_lgg.py --fraction F --variants/--maps`` made the runs and pair sets)::

    .venv/bin/python benchmarks/lgg_privacy_control.py --work WORK --fraction 0.1 \
        --pairs PAIRS_DIR ...

Budget: ~0.5 CPU-min per fraction with a dozen pair sets (extractors cached; one thread).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

KEYS = ("membership_auc", "membership_auc_ci95", "membership_auc_features",
        "membership_auc_ci95_features", "copy_rate", "copy_rate_features")


def left_out_patients(full: Path, sub: Path, out: Path, n: int, seed: int = 0) -> Path:
    """``n`` slices (drawn with ``seed``) of the training patients of ``full`` that the subset
    ``sub`` does not hold, as a prepared dataset (all rows split ``train``)."""
    from synthmed.data.dataset import PreparedDataset, write_prepared

    if (out / "dataset.json").is_file():
        return out
    f, s = PreparedDataset(full), PreparedDataset(sub)
    keep = set(s.groups[s.indices("train")].tolist())
    rows = [i for i in f.indices("train") if f.groups[i] not in keep]
    rows = np.sort(np.random.default_rng(seed).choice(rows, min(n, len(rows)), replace=False))
    return write_prepared(out, images=np.asarray(f.images[rows]), labels=f.labels[rows],
                          splits=["train"] * len(rows), class_names=f.class_names,
                          groups=f.groups[rows].tolist(), name=out.name, force=True)


def blurred_copies(data: Path, out: Path, sigma: float = 1.5, seed: int = 0) -> Path:
    """A positive control: every training slice Gaussian-blurred by ``sigma`` px plus noise of 3
    grey levels, as a prepared dataset (rows split ``train``): a generator that memorized every
    member; a calibrated audit must score it near 1."""
    from scipy import ndimage

    from synthmed.data.dataset import PreparedDataset, write_prepared

    if (out / "dataset.json").is_file():
        return out
    ds = PreparedDataset(data)
    rows = ds.indices("train")
    rng = np.random.default_rng(seed)
    imgs = np.asarray(ds.images[rows]).astype(np.float32)
    blur = np.stack([ndimage.gaussian_filter(x, (0, sigma, sigma)) for x in imgs])
    noisy = np.clip(blur + rng.normal(0, 3, blur.shape), 0, 255).astype(np.uint8)
    return write_prepared(out, images=noisy, labels=ds.labels[rows], splits=["train"] * len(rows),
                          class_names=ds.class_names, groups=ds.groups[rows].tolist(),
                          name=out.name, force=True)


def decoded_maps(pairs: Path, maps: Path, out: Path) -> Path | None:
    """The label maps a (d) pair set was made from (its map run, its seeds as generation.json
    records them, so only the maps an identifiability filter kept), decoded as the pairs use them
    and encoded as label maps at the map dataset's size, as a prepared dataset (rows split
    ``train``); None for a pair set made from real masks."""
    from synthmed.data.dataset import PreparedDataset, write_prepared
    from synthmed.sampling.labelmaps import encode_decoded, sample_labelmaps
    from synthmed.sampling.sampler import parse_seeds

    gen = json.loads((pairs / "generation.json").read_text(encoding="utf-8"))
    if "masks_from_run" not in gen:
        return None
    seeds = parse_seeds(str(gen["seeds"]), None)
    size = int(PreparedDataset(maps).images.shape[-1])
    lesion, head, _ = sample_labelmaps(gen["masks_from_run"]["run"], seeds, size, device="cpu")
    return write_prepared(out, images=encode_decoded(lesion, head),
                          labels=np.zeros(len(seeds), np.int64), splits=["train"] * len(seeds),
                          class_names=["all"], name=out.name, force=True)


def audit(data: Path, synthetic: str, out: Path, cache: Path, extractor=None) -> dict:
    from synthmed.metrics.evaluate import evaluate

    m = evaluate(f"{data}:test", synthetic, train=f"{data}:train", metrics="privacy",
                 extractor=extractor, out=out, cache_dir=cache, plots=False)
    return {k: m.get(k) for k in KEYS}


def _auc(r: dict, space: str = "") -> str:
    a, ci = r[f"membership_auc{space}"], r[f"membership_auc_ci95{space}"]
    return f"{a:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{a:.3f}"


def control(work: Path, fraction: float, pairs: list[Path]) -> str:
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.domain import train_domain_extractor

    pct = f"{round(fraction * 100)}pct"
    data, vw = work / "lgg-full" / f"data-{pct}", work / f"lgg-variants-{pct}"
    if fraction >= 1:  # all patients: no training patient is left out
        data, vw = work / "lgg-full" / "data", work / "lgg-variants"
    n = len(PreparedDataset(data).indices("train"))
    ext_val = train_domain_extractor(data, "val", epochs=15, seed=0, cache_dir=vw / "cache")
    leaky = blurred_copies(data, vw / "control" / "blurred-training-slices")
    sets = {"null: the val patients' slices": f"{data}:val",
            "positive control: the training slices, blurred 1.5 px + noise": f"{leaky}:train"}
    if fraction < 1:
        outside = left_out_patients(work / "lgg-full" / "data", data, vw / "left-out-patients",
                                    n)
        sets["null: left-out training patients' slices"] = f"{outside}:train"
    sets.update({f"{p.parent.parent.name}/{p.name}": str(p) for p in pairs})
    lines = [f"### Audit calibration at {round(fraction * 100)} % of the training patients "
             f"({n} training slices)", "",
             "| set | membership AUC pixel [95% CI] | features, extractor trained on the "
             "training split (default) | features, extractor trained on the val patients | "
             "copy rate pixel / features (default) / features (val extractor) |",
             "|---|---|---|---|---|"]
    doc = {}
    for name, ref in sets.items():
        tag = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        a = audit(data, ref, vw / "control" / f"{tag}-train", vw / "cache")
        b = audit(data, ref, vw / "control" / f"{tag}-val", vw / "cache", extractor=ext_val)
        doc[name] = {"train_extractor": a, "val_extractor": b}
        lines.append(f"| {name} | {_auc(a)} | {_auc(a, '_features')} | {_auc(b, '_features')} "
                     f"| {a['copy_rate']:.3f} / {a['copy_rate_features']:.3f} / "
                     f"{b['copy_rate_features']:.3f} |")
        print(lines[-1], flush=True)
    maps = vw / "maps-data"
    lines += ["", "| pair set | its decoded maps vs the training maps: membership AUC pixel "
              "[95% CI] | copy rate pixel |", "|---|---|---|"]
    null = audit(maps, f"{maps}:val", vw / "control" / "maps-null", vw / "cache-maps")
    lines.append(f"| null: the val patients' maps | {_auc(null)} | {null['copy_rate']:.3f} |")
    for pair in pairs:
        dec = decoded_maps(pair, maps, vw / "control" / f"decoded-{pair.parent.parent.name}-"
                           f"{pair.name}")
        if dec is None:
            continue
        r = audit(maps, f"{dec}:train", vw / "control" / f"maps-{dec.name}", vw / "cache-maps")
        doc[f"decoded maps of {pair}"] = r
        lines.append(f"| {pair.name} | {_auc(r)} | {r['copy_rate']:.3f} |")
        print(lines[-1], flush=True)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    lines += ["", f"CPU {(cpu.ru_utime + cpu.ru_stime) / 60:.1f} min (one thread).", ""]
    (vw / "privacy-control.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    text = "\n".join(lines)
    (vw / "privacy-control.md").write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="LGG membership-audit calibration (issue 21)")
    p.add_argument("--work", type=Path, required=True, help="segmentation_lgg.py's --work")
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--pairs", type=Path, nargs="*", default=[], help="pair sets to audit")
    args = p.parse_args(argv)
    print(control(args.work, args.fraction, args.pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
