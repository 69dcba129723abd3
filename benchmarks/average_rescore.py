"""A finished adversarial run judged again with every generation's policy averaged over its last checkpoints, nothing
retrained: how much of the run's verdict was where each generation's training happened to stop.

    python benchmarks/adversarial.py --setting full --seeds 1 --set adversarial.average=1 --out OUT
    python benchmarks/average_rescore.py OUT/copy --average 10 --name adversarial_full_seed1_averaged

Copies the pipeline folder (runs and metrics; not replay memories, the DVC cache or the MLflow store), writes each
trained generation's ``checkpoints/average.pt`` over its newest ``--average`` kept checkpoints
(:func:`retro_gamer.run.checkpoint.write_average`), and plays this checkout's evaluate stage again with tracking
off. The results file holds the run's own verdict and the averaged one, each with the four checks of
benchmarks/adversarial.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from adversarial import checks  # this folder's: the same four checks
from results import write_results

from retro_gamer.run.checkpoint import list_checkpoints, load, write_average

REPO = Path(__file__).resolve().parent.parent


def verdict(folder: Path, rise: float) -> dict[str, Any]:
    """The gates, ratings and checks the evaluate stage left in ``folder``/metrics."""
    gates = json.loads((folder / "metrics" / "gates.json").read_text())
    found = checks(gates, rise)
    return {
        "checks": found,
        "passed": all(found.values()),
        "gates": gates,
        "ratings": json.loads((folder / "metrics" / "tournament.json").read_text())["ratings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a pipeline folder whose `dvc repro` has run (OUT/copy)")
    parser.add_argument("--average", type=int, default=10, help="checkpoints a generation's policy averages")
    parser.add_argument("--rise", type=float, default=300.0, help="the rating rise r1 -> final to check")
    parser.add_argument("--name", required=True, help="the results file's name")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rescore_") as folder:
        copy = Path(folder) / "copy"
        shutil.copytree(
            args.source, copy, ignore=shutil.ignore_patterns(".dvc", ".git", "mlruns", "replay", "resume.pt")
        )
        averaged = {}
        for run in sorted((copy / "runs" / "adversarial").iterdir()):
            if list_checkpoints(run):
                averaged[run.name] = load(write_average(run, args.average))["averaged"]
        params = yaml.safe_load((copy / "params.yaml").read_text())
        params["adversarial"]["tracking"] = False
        (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, str(REPO / "pipelines" / "evaluate.py")], cwd=copy, env=env, check=True)
        figures = {"as_run": verdict(args.source, args.rise), "averaged": verdict(copy, args.rise)}
    figures["averaged"]["checkpoints"] = averaged
    path = write_results(
        args.name,
        settings={"source": str(args.source), "average": args.average, "rise": args.rise, "params": params},
        figures=figures,
        seeds=[params["adversarial"]["seed"]],
    )
    for name, result in figures.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in result["checks"].items()))
    print(f"figures in {path}")


if __name__ == "__main__":
    main()
