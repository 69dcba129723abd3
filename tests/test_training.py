"""Training end to end on the real snake game: files, determinism, interrupt and resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY, run_module
from test_config import composed

from retro_gamer.config.compose import run_config_from_hydra
from retro_gamer.config.schema import read_config
from retro_gamer.errors import IncompatibleRunError
from retro_gamer.games import description_from_pyproject
from retro_gamer.launch import train_run
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run

TIMING_KEYS = {"wall_seconds", "env_steps_per_s"}


def snake_config(*overrides: str):
    return run_config_from_hydra(composed(["+game=snake", *TINY, *overrides]), "snake")


def test_train_module_writes_a_self_describing_run_dir(tmp_path: Path):
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=6",
            "trainer.checkpoint_every=3",
            "run_dir=runs/snake",
            *TINY,
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "snake"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ep_0003.pt", "ep_0006.pt"]
    assert (run / "config.toml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    log_lines = [line for line in (run / "training.log").read_text().splitlines() if not line.startswith("#")]
    assert log_lines[0].startswith("episodes 1-3 | mean return ") and "env steps/s" in log_lines[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"episodes", "env_steps", "wall_seconds", "env_steps_per_s", "mean_return"} <= set(metrics)
    assert metrics["episodes"] == 6
    assert "episodes 4-6" in result.stdout  # plain lines when stdout is not a terminal
    assert f"Results in {run}" in result.stdout


def test_same_seed_and_config_give_identical_metrics(tmp_path: Path):
    outputs = []
    for name in ("a", "b"):
        cfg = prepare_run(snake_config("trainer.episodes=8", "trainer.checkpoint_every=4"), tmp_path / name, "snake")
        train_run(tmp_path / name, cfg, progress=False)
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        log = [
            line.rsplit("|", 2)[0]
            for line in (tmp_path / name / "training.log").read_text().splitlines()
            if not line.startswith("#")
        ]
        outputs.append(({k: v for k, v in metrics.items() if k not in TIMING_KEYS}, log))
    assert outputs[0] == outputs[1]
    assert outputs[0][0]["updates"] > 0  # learning happened, so the loss is part of what matched


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_writes_a_checkpoint_and_the_same_command_resumes(tmp_path: Path, stop_signal):
    command = [
        sys.executable,
        "-m",
        "retro_gamer.train",
        "+game=snake",
        "trainer.episodes=100000",
        "trainer.checkpoint_every=2",
        "run_dir=runs/snake",
        *TINY,
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "snake"
    deadline = time.monotonic() + 120
    while not checkpoint.list_checkpoints(run) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(stop_signal)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Resume with: python -m retro_gamer.train +game=snake" in out
    stopped_at = json.loads((run / "metrics.json").read_text())["episodes"]
    assert checkpoint.latest_checkpoint(run).name == checkpoint.checkpoint_name(stopped_at)

    again = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            f"trainer.episodes={stopped_at + 3}",
            "trainer.checkpoint_every=2",
            "run_dir=runs/snake",
            *TINY,
        ],
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "metrics.json").read_text())["episodes"] == stopped_at + 3
    assert f"resumed at episode {stopped_at}" in (run / "training.log").read_text()


def test_a_changed_learning_rate_takes_effect_on_resume(tmp_path: Path):
    cfg = prepare_run(snake_config("trainer.episodes=4", "trainer.lr=1e-3"), tmp_path, "snake")
    train_run(tmp_path, cfg, progress=False)
    cfg = prepare_run(snake_config("trainer.episodes=6", "trainer.lr=1e-4"), tmp_path, "snake")
    summary = train_run(tmp_path, cfg, progress=False)
    assert summary["episodes"] == 6
    state = torch.load(tmp_path / checkpoint.RESUME_FILE, weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert read_config(tmp_path).trainer.lr == pytest.approx(1e-4)


def test_an_incompatible_change_is_refused_and_nothing_is_lost(tmp_path: Path):
    cfg = prepare_run(snake_config("trainer.episodes=2"), tmp_path, "snake")
    train_run(tmp_path, cfg, progress=False)
    before = (tmp_path / "config.toml").read_text()
    result = run_module(
        ["-m", "retro_gamer.train", "+game=snake", f"run_dir={tmp_path}", *TINY, "model.hidden=[64]"], cwd=tmp_path
    )
    assert result.returncode == 2
    assert "model.hidden was [32], now [64]: it changes the network's shape" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "config.toml").read_text() == before
    assert checkpoint.load(checkpoint.latest_checkpoint(tmp_path))["episode"] == 2
    with pytest.raises(IncompatibleRunError):
        prepare_run(snake_config("model.dueling=false"), tmp_path, "snake")


def test_no_game_is_a_clear_error(tmp_path: Path):
    result = run_module(["-m", "retro_gamer.train"], cwd=tmp_path)
    assert result.returncode == 2
    assert "+game=NAME" in result.stderr and "snake" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs" / "default").exists()  # nothing left behind


def test_multirun_gives_each_job_its_own_run_dir(tmp_path: Path):
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "model=mlp",
            "trainer.seed=3",
            "trainer.episodes=2",
            "run_dir=sweep",
            *TINY,
            "-m",
            "trainer.lr=1e-3,3e-4",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    configs = sorted((tmp_path / "sweep").glob("*/config.toml"))
    assert len(configs) == 2
    assert sorted(read_config(c.parent).trainer.lr for c in configs) == pytest.approx([3e-4, 1e-3])


def test_time_limit_stops_cleanly_with_a_checkpoint(tmp_path: Path):
    cfg = prepare_run(snake_config("trainer.episodes=1000000", "trainer.time_limit=0.03"), tmp_path, "snake")
    started = time.monotonic()
    summary = train_run(tmp_path, cfg, progress=False)
    assert summary["stopped_by"] == "time_limit"
    assert time.monotonic() - started < 30
    assert checkpoint.latest_checkpoint(tmp_path).name == checkpoint.checkpoint_name(summary["episodes"])


def test_a_user_game_trains_from_its_pyproject_and_the_run_can_move(tmp_path: Path, user_game: Path):
    desc = description_from_pyproject("my_game.py", base_dir=user_game)
    base = snake_config("trainer.episodes=4", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=1")
    run = user_game / "runs" / "walker"
    cfg = prepare_run(replace(base, game=desc), run, "pyproject.toml", base_dir=user_game)
    assert cfg.game.factory == "../../my_game.py"
    assert cfg.game.character_set == ["G", "W"]
    train_run(run, cfg, progress=False)
    assert [p.name for _, p in checkpoint.list_checkpoints(run)] == ["ep_0004.pt"]
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    user_game.rename(moved)  # the project moves with its runs: relative paths still resolve
    result = run_module(
        ["-m", "retro_gamer.cli", "train", str(moved / "runs" / "walker"), "--episodes", "6"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((moved / "runs" / "walker" / "metrics.json").read_text())["episodes"] == 6


def test_a_typo_on_the_command_line_names_the_nearest_key(tmp_path: Path):
    result = run_module(["-m", "retro_gamer.train", "+game=snake", "trainer.lrr=1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "Did you mean 'trainer.lr'?" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_prioritized_replay_and_cnn_train_end_to_end(tmp_path: Path):
    cfg = prepare_run(
        snake_config("trainer.episodes=6", "trainer.prioritized=true", "model=cnn", "model.channels=[4,8]"),
        tmp_path,
        "snake",
    )
    summary = train_run(tmp_path, cfg, progress=False)
    assert summary["episodes"] == 6 and summary["updates"] > 0
    payload = checkpoint.load(checkpoint.latest_checkpoint(tmp_path))
    assert payload["observation"] == {"board_shape": [11, 11], "n_classes": 8, "extras_size": 2, "n_actions": 5}
