"""A benchmark's figures as a JSON file, so reports and later issues quote a file instead of a copied printout.

    from results import write_results   # benchmarks/ is on sys.path when a benchmark script runs
    path = write_results("policy_latency", settings={"calls": 5000}, figures={"mlp": {"p99_ms": 0.2}})

writes ``benchmarks/results/policy_latency.json`` (one file per benchmark name, replaced by each run) with
what the figures depend on besides the settings: the machine, how many cores this process may use, the
commit (and whether the working tree had uncommitted changes) and the date. The environment variable
``RETRO_GAMER_BENCHMARK_RESULTS`` names another folder, so that tests of the scripts leave the recorded
results alone.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_ENV = "RETRO_GAMER_BENCHMARK_RESULTS"


def write_results(name: str, settings: dict[str, Any], figures: dict[str, Any], seeds: list[int] | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``$RETRO_GAMER_BENCHMARK_RESULTS/<name>.json``) and return its path.

    ``settings``: what the benchmark was asked to do (its arguments); ``figures``: what it measured, with
    units in the key names (``median_ms``, ``env_steps_per_s``); ``seeds``: the random seeds used, if any.
    All three must be JSON-serialisable. The machine, cores, commit and date are added here.
    """
    record = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": _machine(),
        "cores": _cores(),
        "seeds": seeds,
        "settings": settings,
        "figures": figures,
    }
    directory = Path(os.environ.get(RESULTS_ENV) or REPO / "benchmarks" / "results")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def seeds_in(overrides: list[str]) -> list[int]:
    """The ``trainer.seed`` a benchmark's Hydra overrides set, else the default seed 0."""
    return [int(o.split("=", 1)[1]) for o in overrides if o.startswith("trainer.seed=")] or [0]


def _commit() -> dict[str, Any]:
    """The repository's HEAD and whether files differ from it: figures from a dirty tree are not that commit's."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"hash": head, "dirty": None if status is None else bool(status)}


def _machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model, OS and the library versions that set the speed."""
    import numpy
    import torch

    return {
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "torch": torch.__version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cores() -> dict[str, int | None]:
    """The machine's cores and those this process may run on (a container or ``taskset`` may allow fewer)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"machine": os.cpu_count(), "usable": usable}
