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
    printed = capsys.readouterr()
    assert ext.is_file() and "domain extractor (simclr+supervised" in printed.out
    assert "sanity ladder" in printed.out + printed.err  # passed, or a warning line
    code = _run(["evaluate", "--real", f"{phantom_dataset}:val+test", "--synthetic",
                 str(fake_synthetic), "--out", str(tmp_path / "o"), "--extractor", str(ext),
                 "--metrics", "fid,privacy", "--bootstrap", "0", "--no-plots", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fid"] is not None and printed["copy_rate"] is not None
    assert (tmp_path / "o" / "metrics.json").is_file()


def test_extractor_module_and_input_size_from_the_cli(phantom_dataset, fake_synthetic, tmp_path,
                                                      capsys, monkeypatch):
    """A Python extractor (pkg.module:factory) and a TorchScript input size reach `evaluate`."""
    import warnings

    import torch

    from synthmed.metrics.features import FEATURE_EXTRACTORS

    monkeypatch.setattr(FEATURE_EXTRACTORS, "_items", dict(FEATURE_EXTRACTORS._items))
    (tmp_path / "smx_cli_feats.py").write_text(
        "import torch\n\n\ndef pooled():\n"
        "    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    common = ["--real", f"{phantom_dataset}:val+test", "--synthetic", str(fake_synthetic),
              "--metrics", "fid", "--bootstrap", "0", "--no-plots", "--json"]
    code = _run(["evaluate", *common, "--out", str(tmp_path / "a"),
                 "--extractor-module", "smx_cli_feats:pooled", "--input-size", "16"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["extractor"] == "pooled" and printed["feature_dim"] == 16
    assert printed["extractors"]["pooled"]["module"] == "smx_cli_feats:pooled"
    assert printed["extractors"]["pooled"]["resized_from"] == [32, 32]
    assert printed["fid"] is not None

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(net, torch.zeros(1, 3, 8, 8)).save(str(tmp_path / "ts.pt"))
    code = _run(["evaluate", *common, "--out", str(tmp_path / "b"), "--features", "torchscript",
                 "--extractor", str(tmp_path / "ts.pt"), "--input-size", "8",
                 "--in-channels", "3"])
    group = json.loads(capsys.readouterr().out)["extractors"]["torchscript"]
    assert code == 0 and group["input_size"] == [8, 8] and group["in_channels"] == 3
    assert group["feature_dim"] == 12


def test_extractor_module_not_found_exit_2(phantom_dataset, fake_synthetic, tmp_path, capsys):
    code = _run(["evaluate", "--real", str(phantom_dataset), "--synthetic", str(fake_synthetic),
                 "--out", str(tmp_path / "o"), "--extractor-module", "smx_missing_mod:f"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--extractor-module smx_missing_mod:f: no module named" in err


def test_ci_label_only_for_a_computed_interval():
    from synthmed.cli.evaluate import _ci_label

    assert _ci_label({"fid_ci_low": 0.1, "fid_ci_high": 0.3, "confidence": 0.95}, "fid") == \
        ", 95% CI"
    assert _ci_label({"fid_ci_low": None, "fid_ci_high": None}, "fid") == ""


def test_no_ci_label_without_an_interval_and_three_verdict_lines(phantom_dataset, fake_synthetic,
                                                                 tiny_extractor, tmp_path, capsys):
    boot = 0
    code = _run(["evaluate", "--real", f"{phantom_dataset}:val+test", "--synthetic",
                 str(fake_synthetic), "--out", str(tmp_path / "o"), "--extractor",
                 str(tiny_extractor), "--metrics", "fid,kid,prdc,privacy", "--bootstrap",
                 str(boot), "--no-plots", "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert ("95% CI" in out) == (boot > 0)
    last = out.strip().splitlines()[-3:]
    assert [line.split(":")[0] for line in last] == ["fidelity", "diversity", "privacy"]
    assert all(any(w in line for w in ("good", "borderline", "poor", "cannot be judged"))
               for line in last)
    assert "per class" in out
