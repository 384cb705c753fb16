"""Issue 21 (d): fully synthetic label maps. The map dataset, decoding, and pairs whose masks and
heads come from an unconditional run trained on the maps (generate --masks-from-run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthmed.config import load_config
from synthmed.data.dataset import PreparedDataset
from synthmed.errors import SynthmedError
from synthmed.sampling.io import load_synthetic
from synthmed.sampling.labelmaps import (
    HEAD,
    LESION,
    decode_labelmaps,
    encode_labelmaps,
    write_labelmap_dataset,
    write_pairs_from_maps,
)
from synthmed.training import train

TINY = {"dcgan": ["model.base_width=8", "model.latent_dim=16"],
        "pix2pix": ["model.base_width=4", "model.image_size=64"]}


def _cfg(data, model: str, *overrides: str):
    return load_config(None, [f"data.path={data}", f"model.name={model}", "name=t",
                              "train.batch_size=8", "train.log_every=1", "train.num_threads=1",
                              "train.steps=2", "train.checkpoint_every=2",
                              "train.sample_every=2", *TINY[model], *overrides])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_dataset):
    """A label-map dataset of the phantom, a dcgan on it and a brain-conditioned pix2pix."""
    root = tmp_path_factory.mktemp("labelmaps")
    maps = write_labelmap_dataset(phantom_dataset, root / "maps")
    return {"maps": maps,
            "maps_run": train(_cfg(maps, "dcgan"), runs_dir=root / "runs", progress=False),
            "img_run": train(_cfg(phantom_dataset, "pix2pix", "model.conditioning=brain"),
                             runs_dir=root / "runs", progress=False)}


def test_encode_decode_round_trip():
    img = -torch.ones(2, 1, 32, 32)
    img[:, :, 4:28, 6:26] = 0.4  # a head
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, :, 10:14, 10:14] = 1
    maps = encode_labelmaps(img, masks)
    assert maps.dtype == np.uint8 and set(np.unique(maps)) <= {0, HEAD, LESION}
    assert (maps[0, 0, 10:14, 10:14] == LESION).all() and (maps[1] != LESION).all()
    lesion, head = decode_labelmaps(torch.from_numpy(maps).float() / 127.5 - 1, smooth=0)
    assert torch.equal(lesion[:, 0], masks[:, 0])
    assert head[:, 0, 16, 16].all() and not head[:, 0, 0, 0].any()
    # specks outside the (largest) head are dropped, lesion or not; holes in the head are filled
    noisy = -torch.ones(1, 1, 32, 32)
    noisy[..., 8:24, 8:24] = 0.0
    noisy[..., 14:16, 14:16] = -1.0
    noisy[..., 0:2, 0:2] = 1.0
    lesion, head = decode_labelmaps(noisy, smooth=0)
    assert head[0, 0, 14, 14] == 1 and lesion.sum() == 0
    # row stripes inside a lesion (lesion level / near head level, as a VAE draws them) decode
    # to one solid lesion with the default blur, to stripes without it
    striped = -torch.ones(1, 1, 32, 32)
    striped[..., 4:28, 4:28] = 0.0
    striped[..., 10:20:2, 10:20] = 1.0
    striped[..., 11:20:2, 10:20] = 0.2
    solid, _ = decode_labelmaps(striped)
    assert solid[0, 0, 11:19, 12:18].all()
    assert not decode_labelmaps(striped, smooth=0)[0][0, 0, 11, 12:18].any()


def test_labelmap_dataset_keeps_ids_splits_and_patients(runs, phantom_dataset):
    src, maps = PreparedDataset(phantom_dataset), PreparedDataset(runs["maps"])
    assert len(maps) == len(src) and maps.masks is None
    assert (maps.splits == src.splits).all() and (maps.groups == src.groups).all()
    levels = np.asarray(maps.images)
    assert set(np.unique(levels)) <= {0, HEAD, LESION}
    has = src.masks.reshape(len(src), -1).any(1)
    assert ((levels.reshape(len(src), -1) == LESION).any(1) == has).all()


def test_pairs_from_synthetic_maps(tmp_path, runs, phantom_dataset):
    kw = dict(maps_run=runs["maps_run"], n=5, fmt="npz")
    a = load_synthetic(write_pairs_from_maps(runs["img_run"], tmp_path / "a", **kw))
    b = load_synthetic(write_pairs_from_maps(runs["img_run"], tmp_path / "b", **kw))
    assert a.images.shape == (5, 1, 64, 64) and a.masks.shape == (5, 64, 64)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    manifest = (tmp_path / "a" / "manifest.csv").read_text(encoding="utf-8")
    assert manifest.count("synthetic-map") == 5
    gen = (tmp_path / "a" / "generation.json").read_text(encoding="utf-8")
    assert "masks_from_run" in gen and "checkpoint_sha256" in gen
    # an anatomy run needs a real slice; an unconditional run is no image generator
    anat = train(_cfg(phantom_dataset, "pix2pix", "model.conditioning=anatomy",
                      "train.steps=1"), runs_dir=tmp_path / "runs", progress=False)
    with pytest.raises(SynthmedError, match="anatomy"):
        write_pairs_from_maps(anat, tmp_path / "c", **kw)
    with pytest.raises(SynthmedError, match="not mask-conditioned"):
        write_pairs_from_maps(runs["maps_run"], tmp_path / "d", **kw)


def _cli(capsys):
    """synthmed's CLI as a function: (exit code, captured output)."""
    from synthmed.cli import main

    def cli(*argv):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        return code, capsys.readouterr()
    return cli


def test_cli_labelmaps_and_masks_from_run(tmp_path, runs, phantom_dataset, capsys):
    cli = _cli(capsys)

    code, _ = cli("data", "labelmaps", phantom_dataset, "--out", tmp_path / "maps")
    assert code == 0
    assert len(PreparedDataset(tmp_path / "maps")) == len(PreparedDataset(runs["maps"]))
    code, out = cli("generate", runs["img_run"], "--masks-from-run", runs["maps_run"], "--n", 3,
                    "--format", "npz", "--out", tmp_path / "pairs")
    assert code == 0 and load_synthetic(tmp_path / "pairs").masks.shape == (3, 64, 64)
    code, out = cli("generate", runs["img_run"], "--masks-from-run", runs["maps_run"], "--n", 3,
                    "--masks-from", phantom_dataset, "--out", tmp_path / "p2")
    assert code == 2 and "--masks-from-run" in out.err + out.out


def test_brain_conditioning_uses_given_heads():
    """The pix2pix sampler takes a synthetic head instead of a source slice: the condition's
    brain channel follows the head it is given."""
    from synthmed.models.pix2pix import build_condition

    heads = torch.zeros(1, 1, 64, 64)
    heads[..., 8:56, 16:48] = 1
    masks = torch.zeros(1, 1, 64, 64)
    cond = build_condition(masks, None, 1, 8, "brain", heads=heads)
    assert cond.shape == (1, 2, 64, 64)
    assert torch.equal(cond[0, 1] > 0, heads[0, 0] > 0)
    with pytest.raises(ValueError, match="source images"):
        build_condition(masks, None, 1, 8, "brain")


def _as_masks(maps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 label maps (N, 1, H, W) -> decoded (lesion, head) float masks."""
    t = torch.from_numpy(np.asarray(maps))
    return (t == LESION).float(), (t > 0).float()


def _planted(runs):
    """A copy of a training patient's map and a new map (a small head in a corner)."""
    ds = PreparedDataset(runs["maps"])
    copy = np.asarray(ds.images[ds.indices("train")[:1]])
    new = np.zeros_like(copy)
    new[..., :10, :10] = HEAD
    new[..., 2:5, 2:5] = LESION
    return np.concatenate([copy, new])


def _spy_splits(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = PreparedDataset.indices

    def indices(self, split):
        seen.append(split)
        return real(self, split)

    monkeypatch.setattr(PreparedDataset, "indices", indices)
    return seen


@pytest.mark.parametrize("calibration", ["patients", "val"])
def test_identifying_maps_drop_a_planted_copy_and_never_read_test(runs, monkeypatch,
                                                                  calibration):
    from synthmed.sampling.labelmaps import identifying_maps

    seen = _spy_splits(monkeypatch)
    data = {"path": str(runs["maps"]), "split": "train"}
    res = identifying_maps(*_as_masks(_planted(runs)), data, calibration)
    assert res.too_close.tolist() == [True, False]
    assert "test" not in seen and "test" not in res.info["splits_read"]
    assert res.info["splits_read"] == (["train"] if calibration == "patients"
                                       else ["train", "val"])
    with pytest.raises(SynthmedError, match="test patients"):
        identifying_maps(*_as_masks(_planted(runs)), {**data, "split": "train+test"},
                         calibration)


def test_pairs_from_maps_exclude_identifying_maps(tmp_path, runs, monkeypatch):
    """Even seeds draw a training patient's map, odd seeds a new one: the filter drops the even
    ones, draws more seeds to keep --n, and records it; with --seeds it only drops."""
    import synthmed.sampling.labelmaps as lm

    planted = _planted(runs)
    real_sample = lm.sample_labelmaps

    def fake(maps_run, seeds, size, device="auto", micro_batch=64):
        _, _, info = real_sample(maps_run, seeds[:1], size, device, micro_batch)
        maps = torch.from_numpy(planted[[s % 2 for s in seeds]]).float()
        les, head = _as_masks(torch.nn.functional.interpolate(maps, size=size).byte().numpy())
        return les, head, info

    monkeypatch.setattr(lm, "sample_labelmaps", fake)
    out = write_pairs_from_maps(runs["img_run"], tmp_path / "a", maps_run=runs["maps_run"], n=4,
                                fmt="npz", exclude_near_copies="patients")
    gen = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    ex = gen["excluded_near_copies"]
    assert load_synthetic(out).images.shape[0] == 4 and gen["n"] == 4
    assert gen["seeds"] == "1,3,5,7" and ex["dropped_seeds"] == [0, 2, 4, 6]
    assert ex["count"] == 4 and ex["calibration"] == "patients" and not ex["short"]
    assert ex["splits_read"] == ["train"]
    out = write_pairs_from_maps(runs["img_run"], tmp_path / "b", maps_run=runs["maps_run"],
                                seeds="0-3", fmt="npz", exclude_near_copies="patients")
    gen = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert gen["n"] == 2 and gen["seeds"] == "1,3"
    # without the filter nothing is recorded as excluded
    out = write_pairs_from_maps(runs["img_run"], tmp_path / "c", maps_run=runs["maps_run"],
                                seeds="0-3", fmt="npz")
    gen = json.loads((out / "generation.json").read_text(encoding="utf-8"))
    assert gen["n"] == 4 and gen["excluded_near_copies"] is None


def test_cli_masks_from_run_exclude_near_copies(tmp_path, runs, capsys):
    cli = _cli(capsys)

    base = ["generate", runs["img_run"], "--masks-from-run", runs["maps_run"], "--n", 3,
            "--format", "npz"]
    code, _ = cli(*base, "--exclude-near-copies", "--near-copy-calibration", "val",
                  "--near-copy-quantile", 0.5, "--out", tmp_path / "p")
    gen = json.loads((tmp_path / "p" / "generation.json").read_text(encoding="utf-8"))
    assert code == 0 and gen["excluded_near_copies"]["calibration"] == "val"
    assert gen["excluded_near_copies"]["quantile"] == 0.5
    code, out = cli(*base, "--exclude-near-copies", "--near-copy-quantile", 0.5, "--out",
                    tmp_path / "r")
    assert code == 2 and "only with --near-copy-calibration val" in out.err + out.out
    code, out = cli(*base, "--near-copy-calibration", "val", "--out", tmp_path / "q")
    assert code == 2 and "only with --exclude-near-copies" in out.err + out.out


def test_labelmaps_augment_adds_moved_training_maps_of_the_same_patient(tmp_path, runs,
                                                                        phantom_dataset):
    from synthmed.sampling.labelmaps import moved_copies

    plain = PreparedDataset(runs["maps"])
    out = PreparedDataset(write_labelmap_dataset(phantom_dataset, tmp_path / "aug", augment=2,
                                                 augment_strength=2))
    train = plain.indices("train")
    assert len(out) == len(plain) + 2 * len(train)
    for split in ("val", "test"):  # held-out maps untouched
        assert np.array_equal(np.asarray(out.images[out.indices(split)]),
                              np.asarray(plain.images[plain.indices(split)]))
    extra = np.asarray(out.images[len(plain):])
    assert set(np.unique(extra)) <= {0, HEAD, LESION}
    assert out.groups[len(plain):].tolist() == plain.groups[train].tolist() * 2
    assert not np.array_equal(extra[:len(train)], np.asarray(plain.images[train]))
    maps = np.asarray(plain.images)
    assert np.array_equal(moved_copies(maps, train, 1, seed=3), moved_copies(maps, train, 1,
                                                                             seed=3))
    assert not np.array_equal(moved_copies(maps, train, 1, seed=3),
                              moved_copies(maps, train, 1, seed=4))
    assert moved_copies(maps, train, 0).shape == (0, 1, *maps.shape[-2:])


def test_cli_labelmaps_augment(tmp_path, runs, phantom_dataset):
    from synthmed.cli import main

    try:
        main(["data", "labelmaps", str(phantom_dataset), "--out", str(tmp_path / "m"),
              "--augment", "1"])
    except SystemExit as e:
        assert not e.code
    ds, plain = PreparedDataset(tmp_path / "m"), PreparedDataset(runs["maps"])
    assert len(ds) == len(plain) + len(plain.indices("train"))


def test_labelmaps_augment_keeps_each_copy_with_its_source_label(tmp_path, phantom_dataset):
    """The moved copies are copy-major (all training maps, then all again): their labels must
    follow the same order as their patients and ids, not repeat each label in place."""
    src = PreparedDataset(phantom_dataset)
    train = src.indices("train")
    assert len(set(np.asarray(src.labels)[train].tolist())) > 1, "needs mixed labels"
    out = PreparedDataset(write_labelmap_dataset(phantom_dataset, tmp_path / "aug", augment=2))
    extra = np.asarray(out.labels[len(src):])
    assert extra.tolist() == np.asarray(src.labels)[train].tolist() * 2
