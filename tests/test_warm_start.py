"""Warm starts on real snake training: a new run continues the previous run's weights, optimizer, counters and
replay memory under its own seed and an exploration bump, deterministically, and never writes into the previous run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from conftest import TINY
from mlflow import MlflowClient

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import Callback
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.launch import train_run
from retro_gamer.policy import TrainedPolicy
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run
from retro_gamer.run.warm_start import warm_start
from retro_gamer.tracking.mlflow_run import TRACKING_FILE

PREVIOUS_STEPS = 600
TIMING_KEYS = {"wall_seconds", "env_steps_per_s"}


def snake(*overrides: str):
    return run_config_from_hydra(
        compose_app(["+game=snake", *TINY, "trainer.episodes=1000000", "trainer.checkpoint_every=5", *overrides]),
        "snake",
    )


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> Path:
    """A finished run of 600 env steps: the generation the tests continue."""
    run = tmp_path_factory.mktemp("generations") / "snake_r1"
    train_run(run, prepare_run(snake(f"trainer.total_env_steps={PREVIOUS_STEPS}"), run, "snake"), progress=False)
    return run


def continued(
    previous: Path, run: Path, *overrides: str, epsilon: float = 0.3, over_steps: int = 200, keep_replay: bool = True
) -> tuple:
    cfg = prepare_run(
        snake(f"trainer.total_env_steps={PREVIOUS_STEPS + 600}", "trainer.seed=1", *overrides), run, "snake"
    )
    return cfg, warm_start(previous, run, cfg, epsilon=epsilon, over_steps=over_steps, keep_replay=keep_replay)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_new_run_continues_the_weights_optimizer_and_counters(previous: Path, tmp_path: Path):
    before = fingerprint(previous)
    was = checkpoint.load(previous / checkpoint.RESUME_FILE)
    run = previous.parent / "snake_r2"  # beside it, as a pipeline's generations are
    cfg, note = continued(previous, run)
    assert note == (
        f"Warm start: continues snake_r1 at env step {PREVIOUS_STEPS}, episode {was['episode']}; epsilon 0.3 → "
        f"0.02 over 200 steps; replay memory {was['replay']['size']} transitions."
    )
    start = checkpoint.load(run / checkpoint.RESUME_FILE)
    for key in ("weights", "target_weights", "acting_weights"):
        assert same_weights(start[key], was[key])
    assert start["optimizer"]["state"][0]["step"] == was["optimizer"]["state"][0]["step"]
    assert (start["episode"], start["env_steps"], start["updates"]) == (
        was["episode"],
        was["env_steps"],
        was["updates"],
    )
    assert start["returns"].tolist() == was["returns"].tolist()
    assert (
        start["config"]["training"]["seed"] == 1
        and start["config"]["training"]["total_env_steps"] == PREVIOUS_STEPS + 600
    )

    first = f"ep_{was['episode']:04d}"  # the starting point, under the counters it continues
    assert same_weights(TrainedPolicy(run).network.state_dict(), was["weights"])
    summary = train_run(run, cfg, progress=False)
    assert (summary["env_steps"], summary["stopped_by"]) == (PREVIOUS_STEPS + 600, "env_steps")
    assert summary["episodes"] > was["episode"] and summary["updates"] > was["updates"]
    assert summary["warm_start"] == {
        "warm_start_from": "../snake_r1",
        "decided_at_env_step": PREVIOUS_STEPS,
        "from_epsilon": 0.3,
        "epsilon_end_at_env_step": PREVIOUS_STEPS + 200,
        "replay_transitions": was["replay"]["size"],
    }
    names = [path.stem for _, path in checkpoint.list_checkpoints(run)]
    assert names[0] == first and len(names) > 1
    assert same_weights(TrainedPolicy(run, checkpoint=first).network.state_dict(), was["weights"])
    latest = TrainedPolicy(run)
    assert latest.checkpoint_path.stem == names[-1]
    assert same_weights(latest.network.state_dict(), checkpoint.load(run / checkpoint.RESUME_FILE)["weights"])
    assert fingerprint(previous) == before  # read, never written


class Epsilons(Callback):
    """(env steps, epsilon) at every episode end."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_episode_end(self, trainer, episode: int, episode_return: float, length: int) -> None:
        self.seen.append((trainer.env_steps, trainer.epsilon()))


def test_exploration_restarts_at_the_bump_and_falls_to_its_end_over_the_given_steps(previous: Path, tmp_path: Path):
    cfg, _ = continued(previous, tmp_path / "run", epsilon=0.3, over_steps=200)
    trainer = DQNTrainer(cfg, tmp_path / "run", [epsilons := Epsilons()])
    assert trainer.epsilon() == 0.3
    trainer.train()
    end = cfg.trainer.epsilon_end
    for steps, epsilon in epsilons.seen:
        done = min(1.0, (steps - PREVIOUS_STEPS) / 200)
        assert epsilon == pytest.approx(0.3 + done * (end - 0.3))
    assert epsilons.seen[0][1] > 0.1 and epsilons.seen[-1][1] == end  # it started high and reached its end


def test_the_replay_memory_is_carried_or_dropped(previous: Path, tmp_path: Path):
    before = fingerprint(previous)
    was = checkpoint.load(previous / checkpoint.RESUME_FILE)
    cfg, _ = continued(previous, tmp_path / "kept")
    for name in was["replay"]["chunks"]:
        assert (tmp_path / "kept" / "replay" / name).read_bytes() == (previous / "replay" / name).read_bytes()
    trainer = DQNTrainer(cfg, tmp_path / "kept")
    assert f"with its replay memory ({was['replay']['size']} transitions)" in trainer.resume_note
    assert "re-wrote" not in trainer.resume_note  # the starting checkpoint is there: nothing looks cut off
    trainer.train()

    cfg, note = continued(previous, tmp_path / "dropped", "trainer.warmup_steps=400", keep_replay=False)
    assert "replay memory dropped: the first 400 steps refill it" in note
    assert not (tmp_path / "dropped" / "replay").exists()
    trainer = DQNTrainer(cfg, tmp_path / "dropped")
    assert "without replay memory" in trainer.resume_note
    summary = trainer.train()
    # no learning until the refill: 400 of the 600 new steps, then one update per train_every steps
    assert summary["updates"] - was["updates"] == pytest.approx((600 - 400) / cfg.trainer.train_every, abs=2)
    assert fingerprint(previous) == before


def test_two_warm_starts_with_the_same_config_train_the_same_weights(previous: Path, tmp_path: Path):
    results = []
    for name in ("a", "b", "other_seed"):
        seed = "trainer.seed=2" if name == "other_seed" else "trainer.seed=1"
        cfg, _ = continued(previous, tmp_path / name, seed)
        summary = train_run(tmp_path / name, cfg, progress=False)
        state = checkpoint.load(tmp_path / name / checkpoint.RESUME_FILE)
        results.append(({k: v for k, v in summary.items() if k not in TIMING_KEYS}, state["weights"]))
    (a, a_weights), (b, b_weights), (_, other_weights) = results
    assert a == b and same_weights(a_weights, b_weights)
    assert not same_weights(a_weights, other_weights)  # each generation's seed decides its games


def test_a_tracked_warm_start_is_a_new_mlflow_run_whose_steps_continue(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracked = ("tracking.enabled=true", f"tracking.uri={uri}", "tracking.replay_every=0")
    first = tmp_path / "r1"
    train_run(
        first, prepare_run(snake(f"trainer.total_env_steps={PREVIOUS_STEPS}", *tracked), first, "snake"), progress=False
    )
    second = tmp_path / "r2"
    cfg, _ = continued(first, second, *tracked)
    assert not (second / TRACKING_FILE).exists()
    train_run(second, cfg, progress=False)
    client = MlflowClient(uri)
    ids = [(run / TRACKING_FILE).read_text() for run in (first, second)]
    assert ids[0] != ids[1]
    runs = {
        run.info.run_name: run.info.run_id
        for run in client.search_runs(client.get_experiment_by_name("snake").experiment_id)
    }
    steps = {name: [m.step for m in client.get_metric_history(runs[name], "episode_return")] for name in ("r1", "r2")}
    assert steps["r2"][0] == steps["r1"][-1] + 1 == checkpoint.load(first / checkpoint.RESUME_FILE)["episode"] + 1


def test_warm_starts_that_cannot_continue_are_refused(previous: Path, tmp_path: Path):
    untrained = tmp_path / "untrained"
    prepare_run(snake(), untrained, "snake")
    with pytest.raises(RetroGamerError, match="no resume.pt"):
        continued(untrained, tmp_path / "a")

    cfg = prepare_run(snake(f"trainer.total_env_steps={PREVIOUS_STEPS}"), tmp_path / "b", "snake")
    with pytest.raises(RetroGamerError, match=f"total_env_steps = {PREVIOUS_STEPS} is not above"):
        warm_start(previous, tmp_path / "b", cfg, epsilon=0.3, over_steps=100)

    with pytest.raises(IncompatibleRunError, match=r"model.hidden was \[32\], now \[16\]"):
        continued(previous, tmp_path / "c", "model.hidden=[16]")

    cfg, _ = continued(previous, tmp_path / "d")
    with pytest.raises(RetroGamerError, match="it has trained already"):
        warm_start(previous, tmp_path / "d", cfg, epsilon=0.3, over_steps=100)

    with pytest.raises(RetroGamerError, match="no config.toml"):
        warm_start(previous, tmp_path / "never_set_up", cfg, epsilon=0.3, over_steps=100)
    for refused in ("a", "b", "c"):
        assert not checkpoint.list_checkpoints(tmp_path / refused)
        assert not (tmp_path / refused / checkpoint.RESUME_FILE).exists()
