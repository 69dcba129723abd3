"""The adversarial pipeline as a clone holds it: the files ``dvc repro`` reads, copied into a new folder.

benchmarks/adversarial.py (a new user's fresh copy) and tests/test_pipeline.py (the same on tiny budgets) both
start from this, so they run what a clone would run and cannot drift apart.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPELINE_FILES = [
    "dvc.yaml",
    "params.yaml",
    "pipelines",
    "conf",
    "retro_gamer",
    "pyproject.toml",
    ".dvc/config",
    ".dvcignore",
    ".dvc/.gitignore",
    ".gitignore",
]


def copy_pipeline(folder: Path) -> None:
    """Copy :data:`PIPELINE_FILES` from this checkout (uncommitted changes included, caches left out) into
    ``folder``, which must not exist yet."""
    folder.mkdir(parents=True)
    for name in PIPELINE_FILES:
        source, target = REPO / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
        else:
            shutil.copy(source, target)
