"""An SB3 run on a retro game lands in MLflow beside retro-gamer's own run of it: same store, experiment, metric
names and steps, and a replay (real SB3, a real SQLite store in a temp project)."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import pytest
from conftest import TINY
from mlflow import MlflowClient
from test_tracking import artifact_paths

import retro_gamer  # noqa: F401  (registers the Gymnasium ids)
from retro_gamer.adapters.sb3_tracking import MlflowCallback
from retro_gamer.config.compose import compose_run
from retro_gamer.config.schema import TrackingConfig
from retro_gamer.launch import train_run
from retro_gamer.run.directory import prepare_run
from retro_gamer.tracking import store

SHORT = "game.max_turns=30"  # short episodes: a few hundred steps hold several checkpoints of 2 episodes
PER_EPISODE = {"episode_return", "episode_length"}
PER_CHECKPOINT = {"window_mean_return", "window_mean_length", "env_steps_per_s", "env_steps"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with a pyproject.toml: the project whose mlruns/ is the default store of runs under it."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "games"\nversion = "0.1"\n')
    return root


def retro_gamer_run(project: Path) -> None:
    """A tiny run of snake by retro-gamer's own trainer, tracked in the project's default store."""
    overrides = [o for o in TINY if not o.startswith("tracking.")]
    cfg, _, _ = compose_run("snake", [*overrides, SHORT, "trainer.episodes=4", "trainer.checkpoint_every=2"])
    run_dir = project / "runs" / "snake"
    train_run(run_dir, prepare_run(cfg, run_dir, "snake"), progress=False)


def runs_by_name(client: MlflowClient) -> dict:
    experiment = client.get_experiment_by_name("snake")
    assert experiment is not None
    return {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}


def test_sb3_dqn_and_ppo_runs_sit_beside_retro_gamers_with_the_same_metrics_and_a_replay(project: Path):
    from stable_baselines3 import DQN, PPO

    retro_gamer_run(project)
    for algorithm, kwargs in ((DQN, {"learning_starts": 50}), (PPO, {"n_steps": 128, "batch_size": 32})):
        env = gymnasium.make("retro_gamer/Snake-v0", overrides=[SHORT])
        model = algorithm("MultiInputPolicy", env, seed=0, device="cpu", **kwargs)
        callback = MlflowCallback(TrackingConfig(replay_every=2), checkpoint_every=2, base_dir=project)
        model.learn(total_timesteps=256, callback=callback)

    uri = store.default_uri(project)
    client = MlflowClient(uri)
    runs = runs_by_name(client)
    assert set(runs) == {"snake", "sb3-dqn", "sb3-ppo"}  # one experiment, the game's, for all three
    ours = runs["snake"]
    for name in ("sb3-dqn", "sb3-ppo"):
        run = runs[name]
        assert run.info.status == "FINISHED"
        params, tags = run.data.params, run.data.tags
        assert params["sb3.algorithm"] == name[4:].upper() and params["sb3.total_timesteps"] == "256"
        game_params = {k: v for k, v in params.items() if k.startswith("game.")}
        assert game_params == {k: v for k, v in ours.data.params.items() if k.startswith("game.")}
        assert params["tracking.replay_every"] == "2"
        assert tags["game"] == "snake" and tags["trainer"] == f"stable-baselines3 {name[4:].upper()}"
        assert "retro_gamer_version" in tags and tags["game_file"] == ours.data.tags["game_file"]

        expected = PER_EPISODE | PER_CHECKPOINT | ({"epsilon"} if name == "sb3-dqn" else set())
        assert expected <= set(run.data.metrics) <= set(ours.data.metrics) | {"loss"}  # retro-gamer's names only
        returns = client.get_metric_history(run.info.run_id, "episode_return")
        episodes = len(returns)
        assert episodes >= 4 and sorted(m.step for m in returns) == list(range(1, episodes + 1))  # episode steps
        windows = [m.step for m in client.get_metric_history(run.info.run_id, "window_mean_return")]
        assert windows == list(range(2, episodes + 1, 2))  # at each checkpoint's last episode, as retro-gamer's

        files = artifact_paths(client, run.info.run_id)
        assert {"replays/ep_0004.html", "replays/ep_0004.txt"} <= files  # every 2nd checkpoint, and the last
        assert "replays/ep_0002.html" not in files
        page = Path(client.download_artifacts(run.info.run_id, "replays/ep_0004.html", str(project / name)))
        assert f"sb3 {name[4:].upper()} ep_0004" in page.read_text(encoding="utf-8")
    assert {m for m in ours.data.metrics if not m.startswith("loss")} >= PER_EPISODE | PER_CHECKPOINT | {"epsilon"}


def test_an_environment_that_is_no_retro_game_is_refused_by_name(project: Path):
    from stable_baselines3 import PPO

    from retro_gamer.errors import RetroGamerError

    model = PPO("MlpPolicy", gymnasium.make("CartPole-v1"), n_steps=64, batch_size=32, device="cpu")
    with pytest.raises(RetroGamerError, match=r"gymnasium\.make\('retro_gamer/"):
        model.learn(total_timesteps=64, callback=MlflowCallback(base_dir=project))


@pytest.mark.parametrize(
    "stop, status", [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")], ids=["error", "ctrl-c"]
)
def test_a_learn_stopped_by_an_exception_ends_its_run_failed_or_killed(project: Path, stop: type, status: str):
    """SB3 skips the end-of-training hook when learn raises; the callback as a context manager ends the run."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 96:
                raise stop("stopped on purpose")
            return True

    model = PPO(
        "MultiInputPolicy",
        gymnasium.make("retro_gamer/Snake-v0", overrides=[SHORT]),
        n_steps=64,
        batch_size=32,
        seed=0,
        device="cpu",
    )
    with pytest.raises(stop), MlflowCallback(checkpoint_every=2, base_dir=project) as tracking:
        model.learn(total_timesteps=256, callback=[tracking, StopAt()])
    run = runs_by_name(MlflowClient(store.default_uri(project)))["sb3-ppo"]
    assert run.info.status == status
    assert "episode_return" in run.data.metrics  # what was sent before the stop is kept
