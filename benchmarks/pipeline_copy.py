"""The adversarial pipeline as a clone holds it: the files ``dvc repro`` reads, copied into a new folder.

benchmarks/adversarial.py (a new user's fresh copy), docs/_tools/pipeline_images.py (the adversarial page's
pictures) and tests/test_pipeline.py (the same on tiny budgets) all start from :func:`fresh_pipeline`, so they run
what a clone would run and cannot drift apart.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

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


def fresh_pipeline(folder: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """The pipeline in a new git repository of one commit, as a clone holds it; ``edit`` first changes the values
    of params.yaml in place (the file is rewritten only then: its comments are lost)."""
    copy_pipeline(folder)
    if edit is not None:
        path = folder / "params.yaml"
        params = yaml.safe_load(path.read_text())
        edit(params)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=copy", "-c", "user.email=copy@localhost", "commit", "-qm", "pipeline"],
    ):
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
    return folder
