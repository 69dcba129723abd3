"""The adversarial pipeline as a new user runs it: a fresh copy of the project, `dvc repro`, then the same with
other seeds (`dvc exp run -S adversarial.seed=S`), timed, with the issue's four checks per seed.

    python benchmarks/adversarial.py                          # the shipped demo (params.yaml), seeds 0 1 2
    python benchmarks/adversarial.py --seeds 0 --name adversarial_demo_seed0
    python benchmarks/adversarial.py --setting full --seeds 0  # the documented full setting (10 rounds, 200k steps: about 15 minutes)
    python benchmarks/adversarial.py --setting full --rounds 5 --steps 600000 --seeds 0  # other rounds and budgets
    python benchmarks/adversarial.py --setting full --seeds 0 --set adversarial.pool.scripted=0.2  # any params.yaml value
    python benchmarks/adversarial.py --seeds 0 --twice         # and a second fresh copy: identical weights?

The checks, per seed, from ``metrics/gates.json`` (written by the pipeline's evaluate stage):
* each side's rating rises from r1 to its final round by at least ``--rise`` (100 for the demo, 300 for full);
* each side's final generation rates above that side's scripted round 0;
* both final generations pass their gate;
* no generation's score against the scripted opponent falls more than 0.10 below the previous generation's.
Each generation's training speed is recorded too, as a share of player_r1's (trained against the script alone).
A setting passes when at least 2 of 3 seeds (all, for fewer) pass every check. The figures go to
``benchmarks/results/<--name>.json``; the copies stay under ``--out`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pipeline_copy import fresh_pipeline  # this folder's, as is results
from results import write_results

from retro_gamer.examples.chase import RULES

FULL_ROUNDS, FULL_STEPS = 10, 200_000  # the "full" setting: many short generations, each side's climb round by round
DROP_LIMIT = 0.10


def fresh_copy(folder: Path, rounds: int | None = None, steps: int | None = None, settings: Sequence[str] = ()) -> Path:
    """The project's pipeline in a new git repository, as a clone would have it, with ``rounds`` rounds and
    ``steps`` env steps a generation instead of ``params.yaml``'s when given, and each ``KEY=VALUE`` of
    ``settings`` (``adversarial.pool.scripted=0.2``: a dotted key of params.yaml, a YAML value) applied."""

    def edit(params: dict) -> None:
        if rounds is not None:
            params["rounds"] = {f"r{n}": {"round": n, "previous": n - 1} for n in range(1, rounds + 1)}
        for side in ("player", "enemy"):
            params["adversarial"][side]["steps"] = steps or params["adversarial"][side]["steps"]
        for setting in settings:
            key, _, value = setting.partition("=")
            *parents, last = key.split(".")
            table = params
            for name in parents:
                table = table[name]
            if last not in table:
                raise SystemExit(f"--set {setting}: params.yaml has no key {key}")
            table[last] = yaml.safe_load(value)

    return fresh_pipeline(folder, edit if rounds is not None or steps is not None or settings else None)


def run(args: list[str], cwd: Path) -> float:
    """Run a dvc command with this environment's executables first on PATH and the copy's own ``retro_gamer``
    first on the import path (not the checkout an editable install points at, which may change meanwhile);
    its seconds."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),
    }
    start = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, env=env, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {cwd}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def checks(gates: dict[str, Any], rise: float) -> dict[str, bool]:
    """The four checks of one seed."""
    out = {}
    for side in ("player", "enemy"):
        g = gates[side]
        out[f"{side}_rise_at_least_{rise:g}"] = g["rating_rise"] >= rise
        out[f"{side}_final_above_scripted"] = g["final_above_scripted"]
        out[f"{side}_gate"] = g["gate"]
        out[f"{side}_no_drop_vs_scripted"] = g["largest_drop_vs_scripted"] <= DROP_LIMIT
    return out


def generation_speeds(copy: Path) -> dict[str, Any]:
    """Each trained generation's env steps per second over its own steps (metrics.json's totals are cumulative
    over the generations a warm start chains), and as a share of player_r1's, the stage against the script alone."""
    root, speeds = copy / "runs" / "adversarial", {}
    for side in ("player", "enemy"):
        before = {"env_steps": 0, "wall_seconds": 0.0}
        for folder in sorted(root.glob(f"{side}_r*"), key=lambda f: int(f.name.rpartition("_r")[2])):
            if not (folder / "metrics.json").is_file():
                continue
            now = json.loads((folder / "metrics.json").read_text())
            speeds[folder.name] = (now["env_steps"] - before["env_steps"]) / (
                now["wall_seconds"] - before["wall_seconds"]
            )
            before = now
    against_script = speeds["player_r1"]
    return {
        name: {"env_steps_per_s": round(v), "of_player_r1": round(v / against_script, 3)} for name, v in speeds.items()
    }


def weights_of(copy: Path) -> dict[str, Any]:
    from retro_gamer.policy import TrainedPolicy

    return {
        folder.name: TrainedPolicy(folder).network.state_dict()
        for folder in sorted((copy / "runs" / "adversarial").iterdir())
        if (folder / "config.toml").is_file()
    }


def same_weights(a: Path, b: Path) -> bool:
    import torch

    first, second = weights_of(a), weights_of(b)
    return first.keys() == second.keys() and all(
        first[g].keys() == second[g].keys() and all(torch.equal(first[g][k], second[g][k]) for k in first[g])
        for g in first
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=["demo", "full"], default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, help=f"rounds to train (default: params.yaml's; full: {FULL_ROUNDS})")
    parser.add_argument(
        "--steps", type=int, help=f"env steps a generation (default: params.yaml's; full: {FULL_STEPS:,})"
    )
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", help="any params.yaml value"
    )
    parser.add_argument("--rise", type=float, help="the rating rise r1 -> final to check (default 100 demo, 300 full)")
    parser.add_argument(
        "--twice", action="store_true", help="also run the first seed in a second fresh copy and compare"
    )
    parser.add_argument("--out", type=Path, help="where the copies go (default: a temporary folder)")
    parser.add_argument("--name", help="the results file's name (default adversarial_<setting>)")
    args = parser.parse_args()
    rise = args.rise if args.rise is not None else (100.0 if args.setting == "demo" else 300.0)
    if args.setting == "full":
        args.rounds, args.steps = args.rounds or FULL_ROUNDS, args.steps or FULL_STEPS
    out = args.out or Path(tempfile.mkdtemp(prefix="adversarial_"))
    copy = fresh_copy(out / "copy", args.rounds, args.steps, args.settings)
    per_seed, figures = {}, {}
    for number, seed in enumerate(args.seeds):
        # the first seed 0 as a new user runs it; others as experiments
        command = ["repro"] if number == 0 and seed == 0 else ["exp", "run", "-S", f"adversarial.seed={seed}"]
        seconds = run(command, copy)
        gates = json.loads((copy / "metrics" / "gates.json").read_text())
        tournament = json.loads((copy / "metrics" / "tournament.json").read_text())
        verdict = checks(gates, rise)
        per_seed[str(seed)] = {
            "command": "dvc " + " ".join(command),
            "seconds": round(seconds, 1),
            "checks": verdict,
            "passed": all(verdict.values()),
            "gates": gates,
            "ratings": tournament["ratings"],
            "speeds": generation_speeds(copy),
        }
        print(f"seed {seed}: {seconds:.0f} s; " + ", ".join(f"{k} {v}" for k, v in verdict.items()), flush=True)
        if number == 0 and args.twice:  # the same command in a second fresh copy, before the next seed changes this one
            second = fresh_copy(out / "second", args.rounds, args.steps, args.settings)
            run(command, second)
            figures["twice"] = {
                "same_weights": same_weights(copy, second),
                "same_tournament": all(
                    (copy / "metrics" / f).read_text() == (second / "metrics" / f).read_text()
                    for f in ("tournament.json", "gates.json")
                ),
            }
            print(f"second fresh copy: {figures['twice']}", flush=True)
    passing = sum(s["passed"] for s in per_seed.values())
    needed = 2 if len(args.seeds) >= 3 else len(args.seeds)
    figures.update(
        {
            "per_seed": per_seed,
            "seeds_passing": passing,
            "setting_passes": passing >= needed,
            "slowest_seconds": max(s["seconds"] for s in per_seed.values()),
        }
    )
    path = write_results(
        args.name or f"adversarial_{args.setting}",
        settings={
            "setting": args.setting,
            "rise": rise,
            "drop_limit": DROP_LIMIT,
            "twice": args.twice,
            "set": args.settings,
            "chase_rules": RULES,
            "params": yaml.safe_load((copy / "params.yaml").read_text()),
        },
        figures=figures,
        seeds=args.seeds,
    )
    print(f"{passing} of {len(args.seeds)} seeds pass every check; figures in {path}")


if __name__ == "__main__":
    main()
