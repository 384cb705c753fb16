"""benchmarks/gpu_smoke.py runs here with --device cpu --quick (it is the GPU check-list: it must
not first break on the GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _smoke(tmp_path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
           "SYNTHMED_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--device",
                           "cpu", "--quick", "--work", str(tmp_path / "work"), "--json", str(out),
                           *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "device cpu" in proc.stdout
    return json.loads(out.read_text())


def test_quick_cpu_run_of_one_method(tmp_path):
    res = _smoke(tmp_path, "--methods", "vae")
    (row,) = res["rows"]
    assert row["method"] == "vae" and row["steps"] == 4 and not res["failed"]
    for key in ("train_img_s", "gen_img_s", "train_peak_mib", "gen_peak_mib", "eval_s"):
        assert row[key] > 0, key


@pytest.mark.slow
def test_quick_cpu_run_of_every_method(tmp_path):
    res = _smoke(tmp_path)
    assert [r["method"] for r in res["rows"]] == ["dcgan", "acgan", "cgan", "ddpm", "ddpm-mask",
                                                  "vae", "pix2pix"]
    assert not res["failed"]
