"""What the adversarial pipeline's stages share: where generations live, which ones are baselines,
and the MLflow parent run of the cycle.

A generation is a folder ``runs/adversarial/{player,enemy}_r{N}``. Round 0 holds the baselines:
folders with ``baseline.json`` and no model, meaning "the game's scripted opponent". Every later
one is a complete training run directory that ``TrainedPolicy`` loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path("runs/adversarial")
BASELINE_FILE = "baseline.json"
CYCLE_FILE = ROOT / "cycle.json"  # the MLflow parent run every stage of this cycle hangs under
SIDES = ("player", "enemy")


def params() -> dict[str, Any]:
    """``params.yaml`` (DVC runs every stage from the repository root)."""
    with open("params.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def generation(side: str, round_number: int) -> Path:
    return ROOT / f"{side}_r{round_number}"


def is_baseline(folder: Path) -> bool:
    return (folder / BASELINE_FILE).is_file()


def policy_source(folder: Path) -> str | None:
    """What the game's opponent slot gets: the run directory, or ``None`` for the scripted baseline."""
    return None if is_baseline(folder) else str(folder.resolve())


def cycle() -> dict[str, Any]:
    """The cycle's MLflow parent run (``{}`` when tracking is off)."""
    return json.loads(CYCLE_FILE.read_text(encoding="utf-8"))
