"""Where a run learns and plays (retro_gamer.runtime.placement): the usable cores, one rule chosen when the run is
created and written to config.toml, and kept by every later start, also for runs saved before it was written."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.config.schema import (
    CONFIG_FILE,
    ModelConfig,
    ModelKind,
    RunConfig,
    TrainerConfig,
    read_config,
    write_config,
)
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.games import GameDescription
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run
from retro_gamer.run.training_state import TrainingState
from retro_gamer.runtime.placement import choose_placement, run_placement, training_device, usable_cores


def cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    root = tmp_path / "cgroup"
    (root / "cpu").mkdir(parents=True)
    if v2 is not None:
        (root / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (root / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return root


def test_usable_cores_follow_the_affinity_mask_and_a_cgroup_quota(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cores(cgroup(tmp_path / "none")) == 4  # no quota files: the mask
    assert usable_cores(cgroup(tmp_path / "max", v2="max 100000")) == 4
    assert usable_cores(cgroup(tmp_path / "one", v2="100000 100000")) == 1  # docker --cpus=1
    assert usable_cores(cgroup(tmp_path / "half", v2="50000 100000")) == 1  # at least one
    assert usable_cores(cgroup(tmp_path / "v1", v1=(250000, 100000))) == 2  # cgroup v1, 2.5 CPUs
    assert usable_cores(cgroup(tmp_path / "v1none", v1=(-1, 100000))) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})  # taskset -c 3
    assert usable_cores(cgroup(tmp_path / "big", v2="800000 100000")) == 1


def test_a_process_pinned_to_one_core_sees_one():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity calls on this platform")
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from retro_gamer.runtime.placement import usable_cores; print(usable_cores())"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "1"
    )


@pytest.mark.parametrize(
    "kind,cores,accelerator,settings,agents,expected",
    [
        ("mlp", 2, True, {}, 2, (True, False)),  # an MLP learns in a second CPU process, even beside a GPU
        ("cnn", 2, False, {}, 2, (True, False)),  # no accelerator: the CNN learns on the CPU, so in its own process
        ("cnn", 2, True, {}, 2, (False, False)),  # the accelerator learns; a quick game stays here
        ("cnn", 2, True, {}, 251, (False, True)),  # ... and a busy game gets a process of its own
        ("mlp", 2, True, {"learner_process": False}, 251, (False, True)),
        ("mlp", 2, True, {"game_process": True}, 2, (False, True)),  # the second core plays the games
        ("mlp", 2, True, {"device": "cuda"}, 2, (False, False)),
        ("cnn", 2, True, {"device": "cpu"}, 2, (True, False)),
        ("mlp", 1, True, {}, 251, (False, False)),  # one core: everything here
        ("mlp", 1, True, {"learner_process": True}, 2, (True, False)),  # as set, even so
    ],
)
def test_the_placement_rule(kind, cores, accelerator, settings, agents, expected):
    learner, games, why = choose_placement(
        TrainerConfig(**settings), kind, agents, 100, cores=cores, accelerator=accelerator
    )
    assert (learner, games) == expected
    assert why  # every choice says why


@pytest.mark.parametrize(
    "kind,settings,learner,expected",
    [
        (ModelKind.mlp, {}, True, "cpu"),
        (ModelKind.mlp, {}, False, "cuda"),
        (ModelKind.cnn, {}, True, "cuda"),
        (ModelKind.cnn, {"device": "cpu"}, False, "cpu"),
        (ModelKind.mlp, {"device": "cuda"}, True, "cuda"),
    ],
)
def test_auto_device_keeps_an_mlp_that_learns_in_its_own_process_on_the_cpu(
    monkeypatch, kind, settings, learner, expected
):
    """The rule behind ``trainer.device=auto``, on a machine that reports a GPU (CI has none to report)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = RunConfig(
        game=GameDescription(factory="f", actions=["a"], reward="r"),
        model=ModelConfig(kind=kind),
        trainer=TrainerConfig(**settings),
    )
    assert training_device(cfg, learner) == torch.device(expected)


def snake(*overrides: str, previous: RunConfig | None = None) -> RunConfig:
    return run_config_from_hydra(compose_app(["+game=snake", *TINY, *overrides]), "snake", previous=previous)


@pytest.mark.skipif(usable_cores() < 2, reason="the default needs a second core to learn on")
def test_the_choice_is_written_once_and_kept(tmp_path: Path):
    run = tmp_path / "run"
    cfg = prepare_run(
        snake("trainer.episodes=2", "trainer.learner_process=null", "trainer.game_process=null"), run, "snake"
    )
    written = read_config(run)
    assert (written.trainer.learner_process, written.trainer.game_process) == (True, False)
    assert written.chosen["placement"].startswith("learning in a second process on the second of")
    trainer = DQNTrainer(cfg, run)
    trainer.train()
    assert trainer.placement.reason.endswith("(config.toml)") and trainer.placement.learner_process
    # the Hydra entry point on the same run keeps what config.toml says, even where a setting now says otherwise
    again = snake("trainer.episodes=3", previous=read_config(run))
    assert (again.trainer.learner_process, again.trainer.game_process) == (
        False,
        False,
    )  # TINY sets both: explicit wins
    kept = snake(
        "trainer.episodes=3", "trainer.learner_process=null", "trainer.game_process=null", previous=read_config(run)
    )
    assert (kept.trainer.learner_process, kept.trainer.game_process) == (True, False) and kept.chosen == written.chosen


def test_a_run_saved_before_the_choice_was_written_keeps_where_it_ran(tmp_path: Path):
    """Older config.toml files lack learner_process and game_process: their resume.pt says what the run did."""
    run = tmp_path / "run"
    cfg = prepare_run(snake("trainer.episodes=2", "trainer.learner_process=true"), run, "snake")
    DQNTrainer(cfg, run).train()
    old = dataclasses.replace(
        cfg, trainer=dataclasses.replace(cfg.trainer, learner_process=None, game_process=None), chosen={}
    )
    write_config(old, run)
    assert "learner_process" not in (run / CONFIG_FILE).read_text()
    saved = TrainingState.from_dict(checkpoint.load(run / checkpoint.RESUME_FILE))
    placement = run_placement(
        read_config(run),
        (saved.learner_process, saved.game_process),
        lambda: pytest.fail("nothing is chosen afresh"),
        100,
    )
    assert (placement.learner_process, placement.game_process) == (True, False)
    assert placement.reason == "as when this run started (its resume.pt)"


def test_the_same_command_writes_the_same_config_busy_or_idle(tmp_path: Path):
    """No automatic choice reads a clock: beast's network and a time-limited run's exploration used to be timed."""
    cli = [sys.executable, "-m", "retro_gamer.cli", "create", "--output"]
    games = [("--game", "retro.examples.beast"), ("--game", "snake_plain", "trainer.time_limit=1.5")]
    idle = [
        subprocess.run([*cli, str(tmp_path / f"idle{i}"), *g], capture_output=True, text=True, check=True)
        for i, g in enumerate(games)
    ]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        busy = [
            subprocess.run([*cli, str(tmp_path / f"busy{i}"), *g], capture_output=True, text=True, check=True)
            for i, g in enumerate(games)
        ]
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    for i in range(len(games)):
        assert (tmp_path / f"idle{i}" / CONFIG_FILE).read_text() == (tmp_path / f"busy{i}" / CONFIG_FILE).read_text()
        assert idle[i].stdout.replace("idle", "busy") == busy[i].stdout
    beast = read_config(tmp_path / "idle0")
    assert beast.model.kind is ModelKind.cnn and "251 agents" in beast.chosen["network"]
    snake_plain = read_config(tmp_path / "idle1")
    assert snake_plain.trainer.exploration_fraction == 0.5 and snake_plain.trainer.epsilon_decay_steps == 150_000
    assert "measured in the run" in snake_plain.chosen["exploration"]
