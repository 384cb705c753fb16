"""`synthmed evaluate` and `synthmed features train` from the command line."""

from __future__ import annotations

import json

import pytest

from synthmed.cli import main


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_missing_inception_weights_exit_2_with_one_line(phantom_dataset, fake_synthetic,
                                                        tmp_path, capsys):
    code = _run(["evaluate", "--real", f"{phantom_dataset}:test", "--synthetic",
                 str(fake_synthetic), "--out", str(tmp_path / "o"), "--features", "inception",
                 "--inception-weights", str(tmp_path / "missing.pth")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "missing.pth" in err and "pip install 'synthmed[inception]'" in err


@pytest.mark.parametrize("extra,needle", [
    (["--metrics", "fid,bogus"], "--metrics: unknown metric 'bogus'"),
    (["--features", "dino"], "--features: unknown feature extractor 'dino'"),
])
def test_bad_options_exit_2(phantom_dataset, fake_synthetic, tmp_path, capsys, extra, needle):
    code = _run(["evaluate", "--real", str(phantom_dataset), "--synthetic", str(fake_synthetic),
                 "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and needle in capsys.readouterr().err


def test_missing_synthetic_dir_exit_2(phantom_dataset, tmp_path, capsys):
    code = _run(["evaluate", "--real", str(phantom_dataset), "--synthetic",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_features_train_then_evaluate(phantom_dataset, fake_synthetic, tmp_path, capsys):
    ext = tmp_path / "domain.pt"
    assert _run(["features", "train", str(phantom_dataset), "--epochs", "1", "--out", str(ext),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert ext.is_file() and "domain extractor (supervised" in capsys.readouterr().out
    code = _run(["evaluate", "--real", f"{phantom_dataset}:val+test", "--synthetic",
                 str(fake_synthetic), "--out", str(tmp_path / "o"), "--extractor", str(ext),
                 "--metrics", "fid,privacy", "--bootstrap", "0", "--no-plots", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fid"] is not None and printed["copy_rate"] is not None
    assert (tmp_path / "o" / "metrics.json").is_file()
