"""``synthmed run``: stages, markers, skipping, --from, key changes, failures and resume."""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

import pytest

from synthmed.cli import main
from synthmed.config import STAGES
from synthmed.errors import SynthmedError
from synthmed.pipeline import run
from synthmed.pipeline.markers import read_marker

pytestmark = pytest.mark.slow


@pytest.fixture
def TINY(tiny_config):  # noqa: N802  (reads like the constant it is)
    return tiny_config


def _tokens(run_dir):
    return {s: (read_marker(run_dir, s) or {}).get("token") for s in STAGES}


def _cli(argv, capsys):
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_stage_leaves_a_marker_and_its_outputs(tiny_run):
    for stage in STAGES:
        m = read_marker(tiny_run, stage)
        assert m is not None and m["inputs_hash"] and m["token"], stage
    assert (tiny_run / "report.html").is_file()
    gen = json.loads((tiny_run / "synthetic" / "generation.json").read_text())
    assert gen["n"] == 96 and gen["classes"] == {"benign": 65, "malignant": 31}  # = train split
    assert (tiny_run / "evaluate" / "embedding.json").is_file()
    log = (tiny_run / "train" / "00000-tiny" / "log.txt").read_text()
    assert "estimate: 20 steps" in log and "ETA" in log and "stopped at step 20" in log


def test_the_run_log_has_the_estimate_and_the_short_of_recipe_line(tiny_run):
    """RUN_DIR/log.txt, the log a `synthmed run` user reads, repeats training's estimate and the
    'stopped before the recipe' line and names the training log that has the ETA lines."""
    log = (tiny_run / "log.txt").read_text()
    assert "train: estimate: 20 steps" in log
    assert "train: stopped at step 20; this recipe (cgan) needs" in log
    assert "train/00000-tiny/log.txt" in log


def test_run_only_keys_never_invalidate_a_stage(TINY):
    """Device and thread counts say how to run, not what: changing them re-runs nothing."""
    from synthmed.pipeline.markers import inputs_hash, stage_inputs
    from synthmed.pipeline.runner import resolve_config

    for stage in STAGES:
        a, b = (stage_inputs(stage, resolve_config(TINY, o), {}) for o in (
            [], ["utility.num_threads=2", "utility.device=cpu", "train.num_threads=2",
                 "pipeline.device=cuda", "train.log_every=7"]))
        assert inputs_hash(a) == inputs_hash(b), stage


def test_rerun_skips_everything(tiny_copy, TINY):
    before = _tokens(tiny_copy)
    run(TINY, run_dir=tiny_copy, progress=False)
    assert _tokens(tiny_copy) == before
    assert "stage train: up to date" in (tiny_copy / "log.txt").read_text()


def test_changing_a_key_reruns_only_the_stages_that_read_it(tiny_copy, TINY):
    before = _tokens(tiny_copy)
    run(TINY, run_dir=tiny_copy, progress=False, overrides=["utility.epochs=2"])
    after = _tokens(tiny_copy)
    changed = {s for s in STAGES if after[s] != before[s]}
    assert changed == {"utility", "report"}


def test_from_stage_reruns_that_stage_and_later_ones(tiny_copy, TINY):
    before = _tokens(tiny_copy)
    run(TINY, run_dir=tiny_copy, progress=False, from_stage="generate",
        overrides=["pipeline.stages=[import,train,generate]"])
    after = _tokens(tiny_copy)
    assert after["import"] == before["import"] and after["train"] == before["train"]
    assert after["generate"] != before["generate"]


def test_a_failing_stage_is_one_line_and_keeps_earlier_outputs(tiny_copy, TINY, capsys):
    cfg = tiny_copy / "cfg.yaml"
    cfg.write_text(json.dumps(TINY))
    before = _tokens(tiny_copy)
    code, _, err = _cli(["run", cfg, "--run-dir", tiny_copy, "--no-progress",
                         "--set", "utility.model=no-such-net"], capsys)
    assert code == 2 and err.strip() == ("error: utility.model: unknown classifier 'no-such-net'"
                                         "; choose one of fridadar-cnn, resnet18, small-resnet")
    assert _tokens(tiny_copy) == before  # refused before any work
    code, _, err = _cli(["run", cfg, "--run-dir", tiny_copy, "--no-progress",
                         "--set", f"utility.weights={tiny_copy / 'missing.pt'}"], capsys)
    assert code == 2
    assert err.strip().startswith("error: stage utility failed:") and "\n" not in err.strip()
    assert "Traceback" not in err
    after = _tokens(tiny_copy)
    assert after["train"] == before["train"] and after["evaluate"] == before["evaluate"]
    assert after["utility"] is None and (tiny_copy / "synthetic" / "manifest.csv").is_file()


def test_refuses_a_folder_it_did_not_make(tmp_path, TINY):
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(SynthmedError, match="not a `synthmed run` directory"):
        run(TINY, run_dir=tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "user data"


def test_unknown_from_stage(tmp_path, TINY):
    with pytest.raises(SynthmedError, match="--from 'trian'"):
        run(TINY, run_dir=tmp_path / "r", from_stage="trian")


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, TINY, pipeline_cache,
                                                          monkeypatch):
    """A signal after 12 steps checkpoints and stops the run (exit 130); the same command then
    resumes training at that step instead of starting again."""
    import synthmed.training.trainer as trainer

    class StopAfter(dict):
        reads = 0

        def __getitem__(self, key):
            StopAfter.reads += 1
            return int(signal.SIGTERM) if StopAfter.reads > 12 else None

    @contextlib.contextmanager
    def fake_signals():
        yield StopAfter(signum=None)

    cfg = {**TINY, "pipeline": {**TINY["pipeline"], "stages": ["import", "train"]}}
    rd = tmp_path / "r"
    monkeypatch.setattr(trainer, "stop_on_signals", fake_signals)
    with pytest.raises(SynthmedError, match="stage train stopped at step 12 of 20") as e:
        run(cfg, run_dir=rd, progress=False)
    assert e.value.exit_code == 130 and read_marker(rd, "train") is None
    monkeypatch.undo()
    run(cfg, run_dir=rd, progress=False)
    assert read_marker(rd, "train")["outputs"]["step"] == 20
    lines = (rd / "train" / "00000-tiny" / "metrics.jsonl").read_text().splitlines()
    assert {"event": "resume", "step": 12} in [json.loads(x) for x in lines]


def test_import_stage_imports_a_raw_folder(tmp_path, TINY, pipeline_cache):
    from synthmed.data.phantom import write_phantom

    raw = tmp_path / "raw"
    write_phantom(raw, n=40, size=32, seed=1)
    cfg = {**TINY, "pipeline": {"source": str(raw / "images"), "stages": ["import"],
                                "import_options": {"size": 16}}}
    rd = run(cfg, run_dir=tmp_path / "r", progress=False)
    summary = json.loads((rd / "data" / "summary.json").read_text())
    assert summary["n"] == 40 and summary["size"] == [16, 16]
    assert read_marker(rd, "import")["outputs"]["dataset"] == str((rd / "dataset").resolve())
    cfg["pipeline"]["import_options"] = {"bogus": 1}
    with pytest.raises(SynthmedError, match=r"^pipeline.import_options.bogus: not an option"):
        run(cfg, run_dir=rd, progress=False)


def test_cli_prints_the_report_how_to_open_it_and_the_own_folder_line(tiny_copy, TINY, capsys):
    cfg = tiny_copy / "cfg.yaml"
    cfg.write_text(json.dumps(TINY))
    code, out, _ = _cli(["run", cfg, "--run-dir", tiny_copy, "--no-progress"], capsys)
    assert code in (0, None)
    assert f"report: {tiny_copy / 'report.html'}" in out and "xdg-open" in out
    assert "pipeline.source=FOLDER" in out
    code, out, _ = _cli(["report", tiny_copy], capsys)
    assert code in (0, None) and "report.html" in out


def test_a_mask_to_image_run_makes_pairs_and_a_segmentation_study(tmp_path, pipeline_cache):
    """pix2pix (configs/lgg_pix2pix.yaml's model) through every stage: generate makes image+mask
    pairs from the training split's masks, utility trains U-Nets on them, and the report shows
    mask | image rows and the Dice table."""
    cfg = {"name": "tinypix", "data": {"path": "phantom", "phantom_n": 40, "phantom_size": 64},
           "model": {"name": "pix2pix", "base_width": 8, "mask_labels": 1},
           "train": {"batch_size": 8, "steps": 4, "log_every": 2, "sample_every": 4,
                     "checkpoint_every": 4, "num_threads": 1},
           "utility": {"task": "segmentation", "seeds": 2, "epochs": 1, "num_threads": 1,
                       "arms": ["real+classic", "real+classic+synthetic"]},
           "pipeline": {"eval_bootstrap": 0, "eval_extractor_epochs": 1}}
    rd = run(cfg, run_dir=tmp_path / "pix", progress=False)
    gen = json.loads((rd / "synthetic" / "generation.json").read_text())
    assert gen["paired"] and gen["n"] == read_marker(rd, "generate")["outputs"]["n"]
    assert len(list((rd / "synthetic" / "masks").glob("*.png"))) == gen["n"]
    u = json.loads((rd / read_marker(rd, "utility")["outputs"]["utility"]).read_text())
    assert u["task"] == "segmentation"
    html = (rd / "report.html").read_text(encoding="utf-8")
    assert "mask given | synthetic image" in html and ">Dice<" in html
    m = json.loads((rd / read_marker(rd, "evaluate")["outputs"]["metrics"]).read_text())
    assert m["label_consistency"]["synthetic"]["n"] == gen["n"]  # issue 21: scored by default
    assert "Label consistency" in html
    assert "label consistency " in (rd / "log.txt").read_text(encoding="utf-8")


def test_train_and_generate_alone_use_data_path(tmp_path, TINY, pipeline_cache):
    """pipeline.stages without import: data.path (here the phantom) is the dataset; with a
    pipeline.source set, the missing import stage is a one-line error."""
    cfg = {**TINY, "train": {**TINY["train"], "steps": 2},
           "pipeline": {**TINY["pipeline"], "stages": ["train", "generate"], "n_generate": 8}}
    rd = run(cfg, run_dir=tmp_path / "r", progress=False)
    assert read_marker(rd, "import") is None and read_marker(rd, "generate") is not None
    assert len(list((rd / "synthetic" / "images").rglob("*.png"))) == 8
    cfg["pipeline"] = {**cfg["pipeline"], "source": str(tmp_path / "raw")}
    with pytest.raises(SynthmedError, match="add import to pipeline.stages"):
        run(cfg, run_dir=tmp_path / "r2", progress=False)


def test_evaluate_stage_logs_rounded_numbers(tmp_path, phantom_dataset, monkeypatch):
    """Issue 19 item 10: the log said `relative FD 3.6902673652841953`."""
    import synthmed.metrics.evaluate as ev
    import synthmed.pipeline.embedding as emb
    from synthmed.config import load_config
    from synthmed.pipeline.stages import Context, evaluate_stage

    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: {"relative_fd": 3.6902673652841953})
    monkeypatch.setattr(emb, "write_embedding", lambda *a, **k: None)
    lines = []
    ctx = Context(run_dir=tmp_path, cfg=load_config(None, [f"data.path={phantom_dataset}"]),
                  outputs={"generate": {"synthetic": "syn"}}, log=lines.append)
    evaluate_stage(ctx)
    assert lines[-1].endswith("(relative FD 3.69)"), lines


@pytest.mark.parametrize("image_size,expected", [(None, None), (32, None), (16, 32)])
def test_generate_stage_makes_images_at_the_datas_size(tmp_path, phantom_dataset, monkeypatch,
                                                       image_size, expected):
    """Issue 19 item 5: a 32 px model on 28 px data made 32 px synthetic images, so the report's
    synthetic thumbnails were larger than the real ones."""
    import synthmed.sampling.writer as writer
    from synthmed.config import load_config
    from synthmed.pipeline.stages import Context, generate_stage

    seen = {}
    monkeypatch.setattr(writer, "write_synthetic", lambda *a, **k: seen.update(k) or a[1])
    over = [f"data.path={phantom_dataset}", "model.name=cgan"]
    if image_size:
        over.append(f"model.image_size={image_size}")
    ctx = Context(run_dir=tmp_path, cfg=load_config(None, over),
                  outputs={"train": {"train_run": "train/run"}}, log=lambda m: None)
    generate_stage(ctx)
    assert seen["size"] == expected  # the phantom fixture is 32 px


def test_raising_train_steps_resumes_the_finished_training(tiny_copy, TINY):
    """The report advises more steps: `synthmed run --set train.steps=N` continues the finished
    run from its last step (here 20 -> 30) instead of starting again; lowering it is one line."""
    before = _tokens(tiny_copy)
    run(TINY, run_dir=tiny_copy, progress=False, overrides=["train.steps=30"])
    after = _tokens(tiny_copy)
    assert after["import"] == before["import"] and after["train"] != before["train"]
    assert read_marker(tiny_copy, "train")["outputs"]["step"] == 30
    lines = (tiny_copy / "train" / "00000-tiny" / "metrics.jsonl").read_text().splitlines()
    assert {"event": "resume", "step": 20} in [json.loads(x) for x in lines]
    assert "train: resuming" in (tiny_copy / "log.txt").read_text()
    with pytest.raises(SynthmedError, match=r"train.steps: 10 is below the 30 steps"):
        run(TINY, run_dir=tiny_copy, progress=False, overrides=["train.steps=10"])


def test_a_five_class_dataset_runs_with_the_shipped_positive_class(tmp_path, pipeline_cache):
    """positive_class means nothing for 3+ classes: it never stops a run; for two classes an
    unknown one stops before any training, in one line."""
    import numpy as np

    from synthmed.data.dataset import write_prepared
    from synthmed.data.splits import group_stratified_split
    from synthmed.pipeline.checks import check_dataset
    from synthmed.pipeline.runner import resolve_config
    from synthmed.pipeline.stages import Context

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 8)
    groups = np.arange(40)
    ds = write_prepared(tmp_path / "five", images=rng.integers(0, 255, (40, 1, 16, 16),
                                                              dtype=np.uint8),
                        labels=labels, splits=group_stratified_split(labels, groups, seed=0),
                        class_names=[str(i) for i in range(5)], ids=[f"i{i}" for i in range(40)],
                        groups=groups, name="five")
    shipped = Path(__file__).resolve().parents[2] / "configs"
    for name, pos in (("quickstart", "malignant"), ("quickstart", "null"),
                      ("breastmnist_cgan", "")):
        extra = [f"utility.positive_class={pos}"] if pos != "" else []
        cfg = resolve_config(shipped / f"{name}.yaml", [f"data.path={ds}", *extra])
        check_dataset(Context(run_dir=tmp_path, cfg=cfg))  # no error
    two = resolve_config(shipped / "quickstart.yaml", ["utility.positive_class=nodule"])
    with pytest.raises(SynthmedError, match=r"^utility.positive_class: 'nodule' is not a class "
                       r"of this dataset; choose one of benign, malignant"):
        run(two, run_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "train").exists()


def test_a_run_from_before_restart_hashes_resumes_after_the_upgrade(tiny_copy, TINY):
    """Run directories made before restart hashes (train.started.json with only inputs_hash):
    an upgrade re-runs every stage, and the finished training is resumed, not redone."""
    started = tiny_copy / "stages" / "train.started.json"
    started.write_text(json.dumps({"inputs_hash": "from-an-older-synthmed"}))
    run(TINY, run_dir=tiny_copy, progress=False, overrides=["train.steps=24"])
    lines = (tiny_copy / "train" / "00000-tiny" / "metrics.jsonl").read_text().splitlines()
    assert {"event": "resume", "step": 20} in [json.loads(x) for x in lines]
    assert "restart_hash" in json.loads(started.read_text())
