"""How long ``make run`` (``synthmed run configs/quickstart.yaml``) takes, stage by stage.

The target is 5 minutes on 2 CPU cores after set-up (fresh caches: the phantom and the domain
extractor are built inside the run). The script runs the quickstart in a subprocess with a fresh
run directory and a fresh ``SYNTHMED_CACHE`` and prints, per stage, the wall time from the stage
markers, plus the whole run's wall time and CPU time (user + system). On a shared machine wall time
depends on the other jobs; CPU time does not, so it gives the range a quiet machine would show:
CPU / threads (perfect use of every core) to CPU / 1 (no parallelism at all).

    python benchmarks/quickstart_time.py                  # 2 threads, the default config
    python benchmarks/quickstart_time.py --threads 2 --set train.steps=300
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("import", "train", "generate", "evaluate", "utility", "report")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="extra --set overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="quickstart-") as tmp:
        if os.environ.get("QUICKSTART_KEEP"):  # keep the run directory to look at its report
            tmp = os.environ["QUICKSTART_KEEP"]
        env = {**os.environ, "SYNTHMED_CACHE": str(Path(tmp) / "cache"),
               "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "synthmed", "run", args.config, "--run-dir", str(run_dir),
               "--no-progress", "--set", f"train.num_threads={args.threads}",
               "--set", f"utility.num_threads={args.threads}"]
        for s in args.set:
            cmd += ["--set", s]
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            sys.exit(f"quickstart failed (exit {res.returncode}): {res.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print("| stage | wall s |\n| --- | --- |")
        for s in STAGES:
            m = json.loads((run_dir / "stages" / f"{s}.json").read_text())
            print(f"| {s} | {m['seconds']:.1f} |")
        print(f"\nwhole run: wall {wall:.0f} s, CPU {cpu:.0f} s with {args.threads} threads; "
              f"a quiet {args.threads}-core machine: {cpu / args.threads:.0f}-{cpu:.0f} s "
              f"(load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after)")
        print(f"report: {(run_dir / 'report.html').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
