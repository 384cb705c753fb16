"""`synthmed generate --steps/--guidance/--bf16` from the command line (diffusion options)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_dataset):
    from synthmed.config import load_config
    from synthmed.training import train

    root = tmp_path_factory.mktemp("runs")
    base = [f"data.path={phantom_dataset}", "train.batch_size=8", "train.steps=1",
            "train.num_threads=1"]
    ddpm = train(load_config(None, base + ["name=dd", "model.name=ddpm", "model.channels=[8,16]",
                                           "model.diffusion_steps=100", "model.sample_steps=2"]),
                 runs_dir=root, progress=False)
    gan = train(load_config(None, base + ["name=g", "model.name=dcgan", "model.base_width=8",
                                          "model.latent_dim=8"]), runs_dir=root, progress=False)
    return {"ddpm": ddpm, "dcgan": gan}


def test_steps_and_guidance_are_used_and_recorded(cli, runs, tmp_path):
    code, out, err = cli(["generate", runs["ddpm"], "--per-class", 1, "--out", tmp_path / "s",
                          "--steps", 3, "--guidance", 1.5])
    assert code == 0, err
    meta = json.loads((tmp_path / "s" / "generation.json").read_text())
    assert meta["sampling_options"] == {"sampler": "dpm-solver++", "steps": 3, "guidance": 1.5,
                                        "bf16": False}
    assert meta["model"] == "ddpm" and meta["n"] == 2


def test_sampler_ddim_is_selectable_and_differs(cli, runs, tmp_path):
    import numpy as np

    sets = {}
    for sampler in ("dpm-solver++", "ddim"):
        out = tmp_path / sampler
        code, _, err = cli(["generate", runs["ddpm"], "--per-class", 1, "--out", out,
                            "--steps", 3, "--sampler", sampler, "--format", "npz"])
        assert code == 0, err
        meta = json.loads((out / "generation.json").read_text())
        assert meta["sampling_options"]["sampler"] == sampler
        sets[sampler] = np.load(out / "synthetic.npz")["train_images"]
    assert not np.array_equal(sets["dpm-solver++"], sets["ddim"])


@pytest.mark.parametrize("run,args,needle", [
    ("ddpm", ["--steps", 0], "--steps 0: solver steps must be an integer from 1 to 100"),
    ("ddpm", ["--sampler", "euler"], "--sampler 'euler': use one of dpm-solver++, ddim"),
    ("dcgan", ["--sampler", "ddim"], "--sampler: not a generation option of dcgan"),
    ("ddpm", ["--steps", 1000], "--steps 1000"),
    ("ddpm", ["--guidance", -0.5], "--guidance -0.5"),
    ("ddpm", ["--guidance", "inf"], "finite number"),
    ("dcgan", ["--steps", 10], "--steps: not a generation option of dcgan"),
    ("dcgan", ["--guidance", 2], "--guidance: not a generation option of dcgan"),
])
def test_bad_diffusion_options_are_one_line_exit_2(cli, runs, tmp_path, run, args, needle):
    code, out, err = cli(["generate", runs[run], "--n", 2, "--out", tmp_path / "s", *args])
    assert code == 2
    assert needle in out + err and "Traceback" not in out + err
    assert not (tmp_path / "s").exists()


def test_generic_option_is_the_same_as_the_short_flag(cli, runs, tmp_path):
    code, out, err = cli(["generate", runs["ddpm"], "--per-class", 1, "--out", tmp_path / "o",
                          "--option", "steps=3", "--option", "guidance=1.5"])
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / "generation.json").read_text())
    assert {k: meta["sampling_options"][k] for k in ("steps", "guidance", "bf16")} == {
        "steps": 3, "guidance": 1.5, "bf16": False}
    code, out, err = cli(["generate", runs["ddpm"], "--n", 1, "--out", tmp_path / "x",
                          "--option", "eta=0.5"])
    assert code == 2 and "--eta: not a generation option of ddpm models (their options: "\
        "steps, guidance, sampler, bf16)" in out + err
    code, out, err = cli(["generate", runs["ddpm"], "--n", 1, "--out", tmp_path / "y",
                          "--option", "steps"])
    assert code == 2 and "expected KEY=VALUE" in out + err
