"""Budgets: a step budget ends training at an exact env-step count on the run's cumulative counter; epsilon's
schedule can be a fraction of the budget, and a time-limited run sizes it from its own measured speed; a run that
has trained all its budget allows changes nothing when started again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY
from mlflow.tracking import MlflowClient

from retro_gamer.cli import app as cli
from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.config.schema import read_config
from retro_gamer.launch import train_run
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run

TIMING_KEYS = {"wall_seconds", "env_steps_per_s"}


def snake(*overrides: str):
    return run_config_from_hydra(compose_app(["+game=snake", *TINY, *overrides]), "snake")


def train(run: Path, *overrides: str) -> dict:
    return train_run(run, prepare_run(snake(*overrides), run, "snake"), progress=False)


@pytest.mark.parametrize("games", ["trainer.game_process=false", "trainer.game_process=true"])
def test_a_step_budget_ends_at_exactly_that_many_env_steps(tmp_path: Path, capsys, games: str):
    """3 games (in one group here, in two that take turns in a games' process) and budgets no multiple of 3."""
    run = tmp_path / "run"
    summary = train(run, "trainer.num_envs=3", "trainer.total_env_steps=1000", "trainer.episodes=1000000", games)
    assert (summary["env_steps"], summary["stopped_by"]) == (1000, "env_steps")
    assert checkpoint.load(run / checkpoint.RESUME_FILE)["env_steps"] == 1000
    assert json.loads((run / "metrics.json").read_text())["env_steps"] == 1000
    assert cli.main(["train", str(run), "--steps", "1601"]) == 0  # counted on the run's counter, not the session's
    assert checkpoint.load(run / checkpoint.RESUME_FILE)["env_steps"] == 1601
    assert read_config(run).trainer.total_env_steps == 1601  # this session's budget, written as --episodes is
    assert "Trained" in capsys.readouterr().out


def test_the_same_step_budget_gives_the_same_run(tmp_path: Path):
    results = []
    for name in ("a", "b"):
        summary = train(tmp_path / name, "trainer.total_env_steps=900", "trainer.episodes=1000000")
        results.append({k: v for k, v in summary.items() if k not in TIMING_KEYS})
    assert results[0] == results[1] and results[0]["updates"] > 0


def test_exploration_can_be_a_fraction_of_the_step_budget(tmp_path: Path):
    run = tmp_path / "run"
    summary = train(
        run,
        "trainer.total_env_steps=1000",
        "trainer.exploration_fraction=0.4",
        "trainer.epsilon_decay_steps=100000",
        "trainer.episodes=1000000",
    )
    assert summary["epsilon_end_at_env_step"] == 400  # 0.4 of the budget, before the configured decay would end
    summary = train(
        tmp_path / "short",
        "trainer.total_env_steps=1000",
        "trainer.exploration_fraction=0.9",
        "trainer.epsilon_decay_steps=100",
        "trainer.episodes=1000000",
    )
    assert summary["epsilon_end_at_env_step"] == 64 + 100  # the configured decay came first


def test_a_time_limited_run_sizes_exploration_from_its_own_speed_and_keeps_it(tmp_path: Path, capsys):
    """The schedule is planned at 10**6 steps, far beyond what 6 seconds give: measured in the run, it ends by
    half of the steps the run really takes, and is recorded, and a later session keeps it."""
    run = tmp_path / "run"
    summary = train(
        run,
        "trainer.time_limit=0.1",
        "trainer.exploration_fraction=0.5",
        "trainer.epsilon_decay_steps=1000000",
        "trainer.episodes=1000000",
    )
    sized = summary["exploration_sized_to_time_limit"]
    assert summary["stopped_by"] == "time_limit"
    assert sized["decided_at_env_step"] < sized["epsilon_end_at_env_step"] <= 0.75 * summary["env_steps"]
    assert summary["epsilon_end_at_env_step"] == sized["epsilon_end_at_env_step"]
    assert json.loads((run / "metrics.json").read_text())["exploration_sized_to_time_limit"] == sized
    assert "Exploration sized to the time limit" in capsys.readouterr().out
    again = train_run(run, read_config(run), progress=False)
    assert again["exploration_sized_to_time_limit"] == sized  # decided once per run


def test_a_finished_run_started_again_changes_nothing(tmp_path: Path, capsys):
    """Not resume.pt, not checkpoints, not metrics.json, and no new MLflow run, model or registered version."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = tmp_path / "run"
    tracked = (
        "tracking.enabled=true",
        f"tracking.uri={uri}",
        "tracking.register_as=tiny-snake",
        "tracking.replay_every=0",
    )
    train(run, "trainer.episodes=3", *tracked)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    versions = client.search_model_versions("name='tiny-snake'")
    capsys.readouterr()
    summary = train(run, "trainer.episodes=3", *tracked)
    assert summary["stopped_by"] == "nothing_to_do" and summary["episodes"] == 3
    assert "already has 3 episodes (trainer.episodes = 3): nothing to do" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == len(runs)
    assert len(client.search_model_versions("name='tiny-snake'")) == len(versions)
    assert client.get_model_version_by_alias("tiny-snake", "newest").version == versions[0].version
