"""What tracking leaves behind in its caller's process and store: the environment as it was, MLflow's telemetry off
only where an entry point switches it off, and experiments that MLflow's UI opens on the runs table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import TINY
from mlflow import MlflowClient

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import Callback
from retro_gamer.launch import train_run
from retro_gamer.run.directory import prepare_run
from retro_gamer.tracking import store
from retro_gamer.tracking.mlflow_run import HTTP_SETTINGS

TELEMETRY = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
KIND_KEY, KIND = store.EXPERIMENT_KIND


def mlflow_settings() -> dict[str, str]:
    """The environment variables that set MLflow's behaviour (MLflow's own bookkeeping starts with an underscore,
    and torch sets variables of its own when it loads parts of itself)."""
    return {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_") or key in TELEMETRY}


class SeeEnvironment(Callback):
    """Records MLflow's HTTP settings as the store sees them in the middle of training."""

    def __init__(self):
        self.seen: dict[str, str | None] = {}

    def on_episode_end(self, trainer, episode, episode_return, length) -> None:
        if episode == 2:
            self.seen = {key: os.environ.get(key) for key in HTTP_SETTINGS}


def test_tracking_leaves_the_environment_as_it_found_it(tmp_path: Path, monkeypatch):
    for key in (*HTTP_SETTINGS, *TELEMETRY):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting wins and stays
    before = mlflow_settings()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    overrides = [o for o in TINY if not o.startswith("tracking.")]
    cfg = run_config_from_hydra(
        compose_app(
            ["+game=snake", *overrides, "trainer.episodes=3", f"tracking.uri={uri}", "tracking.replay_every=0"]
        ),
        "snake",
    )
    run_dir = tmp_path / "run"
    seeing = SeeEnvironment()
    summary = train_run(run_dir, prepare_run(cfg, run_dir, "snake"), callbacks=[seeing], progress=False)
    assert summary["status"] == "finished"
    assert seeing.seen == {**HTTP_SETTINGS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "7"}  # in force while training
    assert mlflow_settings() == before  # and gone after; the library never touches telemetry
    client = MlflowClient(uri)
    assert [r.info.status for r in client.search_runs([client.get_experiment_by_name("snake").experiment_id])] == [
        "FINISHED"
    ]


@pytest.mark.parametrize(
    "given,expected",
    [
        ({}, "true"),
        ({"MLFLOW_DISABLE_TELEMETRY": "false"}, "false"),  # the user's choice, either way
        ({"DO_NOT_TRACK": "true"}, "true"),
        ({"DO_NOT_TRACK": "1"}, "true"),  # the usual opt-out, which MLflow alone would not honour
        ({"DO_NOT_TRACK": "0"}, None),  # the user allows tracking
    ],
)
def test_the_entry_points_switch_telemetry_off_unless_the_user_chose(
    given: dict, expected, tmp_path: Path, monkeypatch, capsys
):
    from retro_gamer import train
    from retro_gamer.cli import app as cli

    for key in TELEMETRY:
        monkeypatch.delenv(key, raising=False)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["eval", str(tmp_path / "no-such-run")]) != 0
    assert os.environ.get("MLFLOW_DISABLE_TELEMETRY") == expected

    for key in TELEMETRY:
        monkeypatch.delenv(key, raising=False)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["retro_gamer.train", "+game=snake", "trainer.lrr=1"])  # refused at once
    with pytest.raises(SystemExit):
        train.cli()
    assert os.environ.get("MLFLOW_DISABLE_TELEMETRY") == expected
    capsys.readouterr()


def test_every_experiment_retro_gamer_uses_opens_on_the_runs_table(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = store.open_store(uri)
    created = store.experiment_id(client, "snake", uri)
    assert store.experiment_id(client, "snake", uri) == created
    assert client.get_experiment(created).tags[KIND_KEY] == KIND == "custom_model_development"
    assert client.get_experiment(created).artifact_location.startswith((tmp_path / "mlruns" / "artifacts").as_uri())

    older = client.create_experiment("made-before-the-tag")  # by an older retro-gamer
    assert KIND_KEY not in client.get_experiment(older).tags
    assert store.experiment_id(client, "made-before-the-tag", uri) == older
    assert client.get_experiment(older).tags[KIND_KEY] == KIND

    chosen = client.create_experiment("chosen", tags={KIND_KEY: "genai_development"})
    store.experiment_id(client, "chosen", uri)
    assert client.get_experiment(chosen).tags[KIND_KEY] == "genai_development"  # a kind someone chose stays
