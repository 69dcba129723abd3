"""The adversarial page's pictures, from a real pipeline run: docs/_static/adversarial-payoff.png is the evaluate
stage's heat map (metrics/payoff.png) and docs/_static/adversarial-ratings.png draws its metrics/ratings.csv the way
``dvc plots show`` does (rating per round, both sides).

    python docs/_tools/pipeline_images.py                       # short budgets: a few minutes on two cores
    python docs/_tools/pipeline_images.py --steps 300000 --episodes 200   # the shipped settings (about 6 minutes)
    python docs/_tools/pipeline_images.py --from OUT/copy   # a run already made, e.g. by benchmarks/adversarial.py --out OUT

Runs ``dvc repro`` in a fresh git repository holding a copy of this project's pipeline (as a new user's clone
would), with ``--steps`` env steps a generation and ``--episodes`` tournament games a pairing; tracking off.
``--from`` takes the pictures from a pipeline folder whose ``dvc repro`` has already run instead.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "docs" / "_static"
BIN = Path(sys.executable).parent
sys.path.append(str(REPO / "benchmarks"))
from pipeline_copy import fresh_pipeline  # noqa: E402 - benchmarks/ holds the one list of the pipeline's files


def run(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # the stages run this environment's python
    subprocess.run(list(args), cwd=cwd, env=env, check=True)


def budgets(steps: int, episodes: int) -> Callable[[dict], None]:
    """params.yaml's edit for the budgets asked for, tracking off."""

    def edit(params: dict) -> None:
        params["adversarial"]["tracking"] = False
        for side in ("player", "enemy"):
            params["adversarial"][side]["steps"] = steps
        params["adversarial"]["tournament"]["episodes"] = episodes

    return edit


def draw_ratings(ratings_csv: Path, output: Path, steps: int) -> None:
    """Rating per round for each side, as ``dvc plots show`` draws metrics/ratings.csv."""
    with open(ratings_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    rounds = [int(row["round"]) for row in rows]
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for side, colour in (("player", "tab:blue"), ("enemy", "tab:red")):
        axes.plot(rounds, [float(row[side]) for row in rows], marker="o", color=colour, label=side)
    axes.set_xticks(rounds, [f"r{n}" + (" (scripted)" if n == 0 else "") for n in rounds])
    axes.set_xlabel("generation")
    axes.set_ylabel("Elo-style rating (mean 1000)")
    axes.set_title(f"Rating of each generation ({steps:,} env steps a generation)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(output)
    print(f"Wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60_000, help="env steps a generation (shipped: 300000)")
    parser.add_argument("--episodes", type=int, default=100, help="tournament games a pairing (shipped: 200)")
    parser.add_argument("--from", dest="source", type=Path, help="a pipeline folder that has run: draw its results")
    args = parser.parse_args()
    if args.source is not None:
        steps = yaml.safe_load((args.source / "params.yaml").read_text())["adversarial"]["player"]["steps"]
        write_pictures(args.source, steps)
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "retro-gamer"
        fresh_pipeline(root, budgets(args.steps, args.episodes))
        run(str(BIN / "dvc"), "repro", cwd=root)
        write_pictures(root, args.steps)


def write_pictures(root: Path, steps: int) -> None:
    """The heat map and the ratings chart of the pipeline run in ``root`` into docs/_static."""
    STATIC.mkdir(exist_ok=True)
    shutil.copy(root / "metrics" / "payoff.png", STATIC / "adversarial-payoff.png")
    print(f"Wrote {STATIC / 'adversarial-payoff.png'}")
    draw_ratings(root / "metrics" / "ratings.csv", STATIC / "adversarial-ratings.png", steps)


if __name__ == "__main__":
    main()
