"""An installed wheel finds its configs from any folder (the top-level conf/ is shipped inside it)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO, TINY


def test_wheel_ships_conf_and_trains_from_an_empty_folder(tmp_path: Path):
    dist, target, empty = tmp_path / "dist", tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(dist.glob("retro_gamer-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "retro_gamer/conf/config.yaml" in names and "retro_gamer/conf/game/snake.yaml" in names
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-m", "retro_gamer.train", "+game=snake", "trainer.episodes=2", *TINY],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (empty / "runs" / "snake" / "config.toml").is_file()
    where = subprocess.run(
        [sys.executable, "-c", "import retro_gamer; print(retro_gamer.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target))  # the wheel's copy ran, not the checkout
