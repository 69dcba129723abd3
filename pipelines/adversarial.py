"""What the adversarial pipeline's stages share: where generations live, which ones are baselines, who
a stage trains against, and the MLflow parent run of the pipeline experiment.

A generation is a folder ``runs/adversarial/{player,enemy}_r{N}``. Round 0 holds the baselines:
folders with ``baseline.json`` and no model, meaning "the game's scripted side". Every later one is a
complete training run directory that ``TrainedPolicy`` loads, continued from the same side's
generation before it (a warm start) and trained against a pool of the other side's generations.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path("runs/adversarial")
BASELINE_FILE = "baseline.json"
SIDES = ("player", "enemy")
EXPERIMENT = "chase-adversarial"


def params() -> dict[str, Any]:
    """``params.yaml`` (DVC runs every stage from the repository root)."""
    with open("params.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def generation(side: str, round_number: int) -> Path:
    return ROOT / f"{side}_r{round_number}"


def other(side: str) -> str:
    return "enemy" if side == "player" else "player"


def is_baseline(folder: Path) -> bool:
    return (folder / BASELINE_FILE).is_file()


def policy_source(folder: Path) -> str | None:
    """What the game's opponent slot gets: the run directory, or ``None`` for the scripted baseline."""
    return None if is_baseline(folder) else str(folder.resolve())


def round_numbers(settings: dict[str, Any]) -> list[int]:
    """Every round the pipeline has, 0 (the baselines) first."""
    return [0, *sorted(int(entry["round"]) for entry in settings["rounds"].values())]


def opponents(settings: dict[str, Any], side: str, round_number: int) -> list[int]:
    """The rounds of the other side's generations a stage of round ``round_number`` trains against, oldest first:
    the player of round N meets the enemies before round N, the enemy of round N meets the players up to round N
    (the enemy trains after the player of its round)."""
    last = round_number - 1 if side == "player" else round_number
    return [n for n in round_numbers(settings) if n <= last]


def cycle_key(settings: dict[str, Any]) -> str:
    """Which pipeline experiment a stage belongs to: ``dvc exp run`` names each experiment (``DVC_EXP_NAME``);
    under ``dvc repro`` it is the parameters and the code's commit. A changed ``params.yaml`` is another
    experiment, so it never reuses or re-finishes an older experiment's MLflow parent run."""
    name = os.environ.get("DVC_EXP_NAME")
    if name:
        return name
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    text = json.dumps(
        {"adversarial": settings["adversarial"], "rounds": settings["rounds"], "commit": commit}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parent_run(settings: dict[str, Any]) -> dict[str, str]:
    """The MLflow parent run of this pipeline experiment, created by its first stage that runs; ``{}`` when
    tracking is off. Every training stage's run hangs under it and ``evaluate`` records the tournament on it."""
    if not settings["adversarial"]["tracking"]:
        return {}
    from retro_gamer.tracking import store

    uri = store.resolve_uri(None, ROOT)
    client = store.open_store(uri)
    experiment = store.experiment_id(client, EXPERIMENT, uri)
    key = cycle_key(settings)
    found = client.search_runs([experiment], filter_string=f"tags.cycle_key = '{key}'", max_results=1)
    if found:
        run = found[0]
    else:
        run = client.create_run(experiment, run_name=f"cycle {key}", tags={"role": "cycle", "cycle_key": key})
        adversarial = settings["adversarial"]
        flat = {
            "seed": adversarial["seed"],
            "rounds": len(settings["rounds"]),
            **{f"{side}.steps": adversarial[side]["steps"] for side in SIDES},
            **{f"pool.{k}": v for k, v in adversarial["pool"].items()},
            **{f"warm_start.{k}": v for k, v in adversarial["warm_start"].items()},
            "average": adversarial["average"],
            **{f"tournament.{k}": v for k, v in adversarial["tournament"].items()},
        }
        for name, value in flat.items():
            client.log_param(run.info.run_id, name, value)
        print(f"MLflow parent run {run.info.run_id} ({run.info.run_name}) in {uri}")
    return {"tracking_uri": uri, "experiment_id": experiment, "run_id": run.info.run_id}
