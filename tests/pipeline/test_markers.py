"""Stage markers, generated from the config's metadata: for every leaf key of every generator's
section, changing it re-runs exactly the stages its role says (the runner with stand-in stages,
so this takes seconds); a new key without a role or description fails here."""

from __future__ import annotations

import copy
import json
import os
import typing
from pathlib import Path

import pytest

from synthmed import generators
from synthmed.config import STAGES, config_from_dict, key_roles, leaf_fields
from synthmed.errors import ConfigError
from synthmed.pipeline import markers as mk
from synthmed.pipeline import runner

BASE = {
    "name": "m",
    "data": {"path": "phantom", "phantom_n": 60, "phantom_size": 32},
    "model": {"name": "dcgan"},
    "train": {"steps": 20},
    "utility": {"arms": ["real", "real+classic"]},
}
#: Valid other values for keys whose type alone does not give one (registry names, paths).
OTHER = {
    "utility.model": "resnet18", "utility.arms": ["real"], "utility.select_metric": "accuracy",
    "utility.positive_class": "benign", "utility.weights": "w.pt", "utility.synthetic": "s",
    "pipeline.eval_features": "domain,inception", "pipeline.eval_metrics": "fid",
    "pipeline.import_options": {"size": 32}, "pipeline.edits": ["flip=h"],
    "model.loss": "hinge", "model.diffaugment": "translation", "model.attention_levels":
    [False, True], "model.channels": [8, 16], "train.device": "cpu", "utility.device": "cpu",
    "pipeline.device": "cpu", "name": "other", "utility.threshold": 0.5,
    "model.conditioning": "brain",
}
#: Keys the generated test leaves to its own test (they choose which stages exist at all).
SELECTORS = {"pipeline.stages"}


def _other(key: str, info, value):
    """A valid value of ``key`` other than ``value``, from its type and constraints."""
    if key in OTHER:
        return OTHER[key]
    ann = info.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) is typing.Literal:
        return next(a for a in typing.get_args(ann) if a != value)
    if typing.get_origin(ann) is tuple:
        return [0.9, 0.99]
    if typing.get_origin(ann) is list and float in typing.get_args(ann):
        return [0.5]
    if ann is bool or bool in args:
        return not value if isinstance(value, bool) else True
    if ann is int or int in args:
        return (value or 1) + 1
    if ann is float or float in args:
        return value / 2 if value else 0.5
    if ann is str or str in args:
        return (value or "x") + "2"
    raise AssertionError(f"{key}: add a valid other value to OTHER")


def _downstream(first: str | None) -> set[str]:
    if first is None:
        return set()
    out = {first}
    for s in STAGES:
        if any(u in out for u in mk.UPSTREAM[s]):
            out.add(s)
    return out


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The runner with stand-in stages that record what ran (train: resumed or not)."""
    ran: list[tuple[str, bool | None]] = []

    def stage(name):
        def run(ctx):
            ran.append((name, None))
            return {"stage": name}
        return run

    def train(ctx, resume_hash=None, inputs_hash=""):
        resumed = resume_hash == inputs_hash
        if not resumed:
            (ctx.run_dir / "stages" / "train.started.json").write_text(
                json.dumps({"restart_hash": inputs_hash}))
        ran.append(("train", resumed))
        return {"train_run": "train/x", "step": ctx.cfg.train.steps}

    monkeypatch.setattr(runner, "STAGE_FUNCS", {s: stage(s) for s in STAGES if s != "train"})
    monkeypatch.setattr(runner, "train_stage", train)
    monkeypatch.setattr(runner, "check_dataset", lambda ctx: None)
    monkeypatch.chdir(tmp_path)
    return ran


def _cases():
    """(model.name, key) for every leaf key: model keys under every generator name, the rest
    once (under dcgan)."""
    out = []
    for name in generators.names():
        cfg = config_from_dict({"model": {"name": name}})
        for key in leaf_fields(cfg):
            if key.startswith("model.") or name == "dcgan":
                out.append((name, key))
    return out


def test_every_leaf_key_has_a_role_and_a_description():
    bad = []
    for name in generators.names():
        cfg = config_from_dict({"model": {"name": name}})
        for key, info in leaf_fields(cfg).items():
            if not info.description or key_roles(cfg)[key] not in generators.ROLES:
                bad.append(f"{name}: {key}")
        for opt, info in generators.option_fields(name).items():
            if not info.description or generators.role_of(info) not in generators.ROLES:
                bad.append(f"{name}: generation option {opt}")
    assert not bad, f"keys without a role or description: {bad}"


@pytest.mark.parametrize("name,key", _cases())
def test_changing_a_key_reruns_exactly_the_stages_its_role_says(fake, tmp_path, name, key):
    if key in SELECTORS:
        pytest.skip("selects stages; see test_a_skipped_stage_with_changed_inputs_is_named")
    if key == "model.name" and len(generators.get(name).names) == 1:
        pytest.skip("another name is another section (tested for the GAN and ddpm families)")
    base = copy.deepcopy(BASE)
    base["model"] = {"name": name}
    if generators.needs_masks(name):
        base["utility"] = {"task": "segmentation"}
    cfg = config_from_dict(base)
    if key == "data.split" and generators.needs_masks(name):
        pytest.skip("mask-to-image runs only train on the train split (refused before work)")
    info = leaf_fields(cfg)[key]
    role = key_roles(cfg)[key]
    value = _other(key, info, _get(cfg.model_dump(mode="json"), key))
    if key in ("data.path", "pipeline.source"):  # checked to exist before any work
        value = str(tmp_path / "elsewhere")
        Path(value).mkdir()
    rd = tmp_path / "r"
    runner.run(base, run_dir=rd, progress=False)
    assert {s for s, _ in fake} == set(STAGES)
    fake.clear()
    runner.run(base, run_dir=rd, progress=False, overrides=[f"{key}={json.dumps(value)}"])
    assert {s for s, _ in fake} == _downstream(mk.ROLE_STAGE[role]), (key, role)
    if ("train", True) in fake or ("train", False) in fake:
        resumed = dict(fake)["train"]
        assert resumed == (role == "resumable"), f"{key}: train resumed={resumed}"


def _get(data, dotted):
    for part in dotted.split("."):
        data = data[part]
    return data


def test_lower_steps_are_not_resumed_but_refused_by_resume():
    from synthmed.training.resume import check_steps

    check_steps(30, 20, "run r")
    with pytest.raises(ConfigError, match=r"^train.steps: 10 is below the 20 steps run r already "
                       r"trained; set train.steps >= 20"):
        check_steps(10, 20, "run r")


def test_a_skipped_stage_with_changed_inputs_is_named(fake, tmp_path):
    rd = tmp_path / "r"
    runner.run(BASE, run_dir=rd, progress=False)
    fake.clear()
    runner.run(BASE, run_dir=rd, progress=False,
               overrides=["pipeline.stages=[evaluate,report]", "model.base_width=32"])
    # evaluate's inputs (generate's token) are unchanged; the report re-runs to name the stale stage
    assert {s for s, _ in fake} == {"report"}
    log = (rd / "log.txt").read_text()
    assert "warning: stage train is not in pipeline.stages but its inputs changed since it ran "\
        "(model.base_width)" in log
    warnings = json.loads((rd / "run.json").read_text())["warnings"]
    assert len(warnings) == 1 and "stage train" in warnings[0]
    runner.run(BASE, run_dir=rd, progress=False)  # all stages again: no stale stage left
    assert "warnings" not in json.loads((rd / "run.json").read_text())


def test_every_marker_holds_the_synthmed_version(fake, tmp_path):
    from synthmed import __version__

    rd = tmp_path / "r"
    runner.run(BASE, run_dir=rd, progress=False)
    for stage in STAGES:
        assert mk.read_marker(rd, stage)["inputs"]["versions"]["synthmed"] == __version__


def test_an_upgrade_reruns_every_stage_and_train_resumes(fake, tmp_path, monkeypatch):
    rd = tmp_path / "r"
    runner.run(BASE, run_dir=rd, progress=False)
    fake.clear()
    monkeypatch.setattr(mk, "__version__", "9.9.9")
    runner.run(BASE, run_dir=rd, progress=False)
    assert {s for s, _ in fake} == set(STAGES) and dict(fake)["train"] is True


def test_a_source_is_identified_by_its_content_manifest(tmp_path):
    src = tmp_path / "src"
    (src / "benign").mkdir(parents=True)
    (src / "benign" / "a.png").write_bytes(b"1234")
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\na.png,benign\n")
    cfg = config_from_dict({"pipeline": {"source": str(src),
                                         "import_options": {"labels_csv": str(csv)}}})
    first = mk.data_identity(cfg)
    assert first["manifest"][0][:2] == ["benign/a.png", 4]
    (src / "benign" / "a.png").write_bytes(b"12345")  # an edit in a class subfolder
    second = mk.data_identity(cfg)
    assert second != first
    st = csv.stat()
    csv.write_text("file,label\na.png,malign\n")  # same size and mtime, other content
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mk.data_identity(cfg)["labels_csv"] != second["labels_csv"]


def test_without_an_import_stage_the_data_still_identifies_train(tmp_path):
    cfg = config_from_dict({"data": {"path": str(tmp_path)}})
    (tmp_path / "dataset.json").write_text(json.dumps({"content_hash": "abc"}))
    inputs = mk.stage_inputs("train", cfg, {})
    assert inputs["files"] == {"content_hash": "abc"} and "data.path" in inputs["config"]


def test_generation_keys_reach_generate_as_options(tmp_path):
    from synthmed.pipeline.stages import Context, _generation_options

    cfg = config_from_dict({"model": {"name": "ddpm", "sample_steps": 20}})
    train_run = tmp_path / "train" / "x"
    train_run.mkdir(parents=True)
    (train_run / "config.yaml").write_text(
        "model: {name: ddpm, sample_steps: 50, guidance: 1.0, sampler: dpm-solver++}")
    ctx = Context(run_dir=tmp_path, cfg=cfg, outputs={"train": {"train_run": "train/x"}})
    assert _generation_options(ctx) == {"steps": 20}
    assert Path(tmp_path / "train").is_dir()


@pytest.mark.parametrize("opts,needle", [
    ({"bogus": 1}, r"^pipeline.import_options.bogus: not an option of data import; choose from"),
    ({"size": "big"}, r"^pipeline.import_options.size: 'big' is not a valid value \(expected int"),
    ({"normalize": "fancy"}, r"^pipeline.import_options.normalize: 'fancy': choose one of auto"),
])
def test_import_options_are_checked_before_any_work(tmp_path, opts, needle):
    (tmp_path / "src").mkdir()
    with pytest.raises(ConfigError, match=needle):
        runner.run({**BASE, "pipeline": {"source": str(tmp_path / "src"),
                                          "import_options": opts}},
                   run_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
