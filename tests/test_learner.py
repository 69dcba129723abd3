"""Learning in a second process (retro_gamer.dqn.learner): the same training, number for number, as in this
process; chosen by default on a CPU with a second core, and kept by a resumed run; a learner process
that dies is a clear error that loses nothing, and Ctrl+C ends it with its trainer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import TINY
from test_hardening import QUICK, WALKER, write_game

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.learner import Outbox, WeightSlots
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run

ENDLESS = (
    WALKER
    + """

def create_game():
    return Game([Walker()], {"points": 0}, board_size=(8, 4))
"""
)


def snake(*overrides: str):
    return run_config_from_hydra(compose_app(["+game=snake", *TINY, *overrides]), "snake")


def train(run: Path, *overrides: str) -> tuple[dict, dict]:
    trainer = DQNTrainer(prepare_run(snake(*overrides), run, "snake"), run)
    return trainer.train(), checkpoint.load(run / checkpoint.RESUME_FILE)


def test_a_learner_process_trains_exactly_as_one_process(tmp_path: Path):
    """Actions use the weights of the request before in both places, so where the learning runs changes nothing."""
    same = (
        "trainer.episodes=12",
        "trainer.threads=1",
        "trainer.prioritized=true",
    )  # threads: the last bits of torch's sums
    here, here_state = train(tmp_path / "one", *same, "trainer.learner_process=false")
    there, there_state = train(tmp_path / "two", *same, "trainer.learner_process=true")
    assert here["updates"] > 50
    timing = ("wall_seconds", "env_steps_per_s")
    assert {k: v for k, v in here.items() if k not in timing} == {k: v for k, v in there.items() if k not in timing}
    for key in ("weights", "acting_weights", "target_weights"):
        assert all(torch.equal(here_state[key][k], there_state[key][k]) for k in here_state[key]), key
    assert not all(
        torch.equal(here_state["weights"][k], here_state["acting_weights"][k]) for k in here_state["weights"]
    )
    assert here_state["replay"]["priority"].equal(there_state["replay"]["priority"])
    assert (here_state["learner_process"], there_state["learner_process"]) == (False, True)


def start_training(tmp_path: Path, episodes: int) -> subprocess.Popen:
    """``retro-gamer train`` on a game that never ends, learning in a second process; returns once it trains."""
    write_game(tmp_path, "endless", ENDLESS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "retro_gamer.cli"]
    subprocess.run(
        [
            *cli,
            "create",
            "--game",
            "endless.py",
            "--output",
            "run",
            *QUICK,
            "trainer.learner_process=true",
            "trainer.checkpoint_every=2",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*cli, "train", "run", "--episodes", str(episodes)],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    for line in proc.stdout:
        if line.startswith("episodes "):  # a checkpoint line: the learner has answered
            break
    return proc


def test_a_killed_learner_process_is_a_clear_error_and_loses_nothing(tmp_path: Path):
    proc = start_training(tmp_path, 100_000)
    learner = subprocess.run(
        ["pgrep", "-f", "-P", str(proc.pid), "import serve.* LearnerProcess$"], capture_output=True, text=True
    ).stdout.split()
    assert len(learner) == 1
    saved = checkpoint.load(tmp_path / "run" / checkpoint.RESUME_FILE)["episode"]
    os.kill(int(learner[0]), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert (
        f"the learner process (pid {learner[0]}) was killed by SIGKILL (the system may have run out of memory)" in err
    )
    assert "run the same command again to resume from the last checkpoint" in err and "Traceback" not in err
    after = checkpoint.load(tmp_path / "run" / checkpoint.RESUME_FILE)["episode"]
    assert after >= saved
    resumed = subprocess.run(
        [sys.executable, "-m", "retro_gamer.cli", "train", "run", "--episodes", str(after + 2)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed at episode {after} from resume.pt with its replay memory" in resumed.stdout


def test_ctrl_c_stops_the_trainer_and_its_learner_and_saves(tmp_path: Path):
    proc = start_training(tmp_path, 100_000)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl+C reaches the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Stopped at episode" in out and "Traceback" not in err
    assert checkpoint.load(tmp_path / "run" / checkpoint.RESUME_FILE)["learner_process"] is True
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == []  # the learner process ended with its trainer


def test_the_outbox_grows_past_its_arrays_and_hands_over_every_row_in_order():
    outbox = Outbox((2, 3), 1, capacity=2)
    for _round in range(2):  # the arrays are reused after a take
        for i in range(5):
            board = np.full((2, 3), i, np.uint8)
            outbox.add(board, np.array([i], np.float32), i, 0.5 * i, 0.9, board + 1, np.array([-i], np.float32))
        rows = outbox.take()
        assert len(outbox) == 0 and outbox.take() is None
        assert rows.action.tolist() == list(range(5)) and rows.reward.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
        assert rows.board[:, 0, 0].tolist() == list(range(5)) and rows.next_board[:, 1, 2].tolist() == list(range(1, 6))
        assert rows.next_extras.ravel().tolist() == [0, -1, -2, -3, -4] and rows.discount.dtype == np.float32


def test_each_publication_fills_the_other_copy_so_the_newest_stays_readable_through_the_next():
    net = torch.nn.Linear(3, 2)
    slots = WeightSlots(np.zeros(WeightSlots.length(8), np.float32))
    with torch.no_grad():
        net.weight.fill_(1.0), net.bias.fill_(1.0)
    slots.publish(net)
    first = slots.newest()
    assert first.tolist() == [1.0] * 8
    with torch.no_grad():
        net.weight.fill_(2.0), net.bias.fill_(2.0)
    slots.publish(net)  # the learner's next request, while the trainer may still copy the first
    assert first.tolist() == [1.0] * 8 and slots.newest().tolist() == [2.0] * 8
