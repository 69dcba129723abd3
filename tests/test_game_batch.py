"""Games played in a second process (retro_gamer.env.game_batch): the same training, number for number, as in
one process; the game's own failures and prints come through; Ctrl+C stops both processes cleanly;
and the automatic choice follows how much of a training step the games take."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import TINY
from test_hardening import QUICK, WALKER, refused, run_cli, write_game

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.env.game_batch import GameProcess, LocalGames
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run

SLOW_GAME = (
    WALKER
    + """
import time


class Clock:
    name = "clock"
    character = "c"
    position = (7, 3)

    def play_turn(self, game):  # a game with a lot to do each turn (beast moves 250 agents)
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass


def create_game():
    return Game([Walker(), Clock()], {"points": 0}, board_size=(8, 4))
"""
)


def snake(*overrides: str):
    return run_config_from_hydra(compose_app(["+game=snake", *TINY, *overrides]), "snake")


def train(run: Path, *overrides: str) -> tuple[dict, dict]:
    trainer = DQNTrainer(prepare_run(snake(*overrides), run, "snake"), run)
    return trainer.train(), checkpoint.load(run / checkpoint.RESUME_FILE)


def test_a_second_process_trains_exactly_as_one_process(tmp_path: Path, monkeypatch):
    """Where the games run changes nothing else: played here in the same two groups (which the second process
    uses so that one group plays while the other is recorded), the training is the same, number for number."""
    same = ("trainer.episodes=12", "trainer.threads=1")  # torch's thread count changes the last bits of its sums
    monkeypatch.setattr(LocalGames, "groups", GameProcess.groups)
    alone, alone_state = train(tmp_path / "one", *same, "trainer.game_process=false")
    split, split_state = train(tmp_path / "two", *same, "trainer.game_process=true")
    assert alone["updates"] > 0
    timing = ("wall_seconds", "env_steps_per_s")
    assert {k: v for k, v in alone.items() if k not in timing} == {k: v for k, v in split.items() if k not in timing}
    assert all(torch.equal(alone_state["weights"][k], split_state["weights"][k]) for k in alone_state["weights"])
    assert alone_state["python_random"] == split_state["python_random"]  # the games drew the same numbers
    assert (alone_state["second_process"], split_state["second_process"]) == (False, True)


def test_queued_turns_are_played_in_order_and_before_a_restart_in_both_places(tmp_path: Path):
    """The trainer sends a group's turn before collecting the other's, and restarts games while a turn is still
    queued: the games' process must answer in order and play that turn before the restart, as here."""
    cfg = prepare_run(snake(), tmp_path / "run", "snake")
    rng = np.random.default_rng(0)
    calls = [(rng.integers(0, 5, size=2), rng.integers(0, 5, size=2), [int(rng.integers(0, 4))]) for _ in range(30)]

    def play(games: LocalGames | GameProcess) -> list:
        seen = [games.reset()]
        for first, second, restart in calls:
            games.step_async(first, [0, 1])
            games.step_async(second, [2, 3])
            seen.append(games.reset(restart))  # asked while both turns are queued
            seen += [games.step_wait(), games.step_wait()]
        seen.append(games.random_state())
        games.close()
        return seen

    here = play(LocalGames(cfg.game, tmp_path / "run", 4, seed=3))
    there = play(GameProcess(cfg.game, tmp_path / "run", 4, seed=3))
    assert len(here) == len(there) == 2 + 3 * len(calls)
    for a, b in zip(here[:-1], there[:-1]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert here[-1] == there[-1]
    assert not all(np.array_equal(x, y) for x, y in zip(here[3], here[6]))  # the games really moved


def test_the_games_failure_in_the_second_process_shows_the_games_own_frames(tmp_path: Path, monkeypatch, capsys):
    module = f"boom2_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER
        + """
class Bomb:
    name = "bomb"
    character = "B"
    position = (5, 0)

    def play_turn(self, game):
        print("tick", game.turn_number)  # a game's own print must not disturb the hand-over
        if Path("armed").exists() and game.turn_number == 7:
            game.state["points"] = 1 / 0


def create_game():
    return Game([Walker(), Bomb()], {"points": 0}, board_size=(8, 4))
""",
    )
    monkeypatch.chdir(tmp_path)
    assert (
        run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK, "trainer.game_process=true")[0]
        == 0
    )
    assert run_cli(capsys, "train", "run", "--episodes", "3")[0] == 0  # prints and all
    Path("armed").touch()
    err = refused(
        capsys,
        "train",
        "run",
        "--episodes",
        "6",
        says=(
            "the game's code failed while running `retro-gamer train`",
            f'{module}.py", line',
            "in play_turn",
            'game.state["points"] = 1 / 0',
            "ZeroDivisionError: division by zero",
        ),
    )
    assert "retro_gamer" not in err and "site-packages" not in err
    # the other group's turn, already queued, failed the same way; the games' process was still ended
    children = subprocess.run(
        ["pgrep", "-f", "-P", str(os.getpid()), "import serve.* GameProcess$"], capture_output=True, text=True
    )
    assert children.stdout.split() == []


def test_a_rule_broken_in_the_second_process_is_named(tmp_path: Path, monkeypatch, capsys):
    module = f"nan_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER.replace(
            'game.state["points"] = game.state["points"] + 1',
            'game.state["points"] = None if game.turn_number == 3 else 1',
        )
        + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    assert (
        run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK, "trainer.game_process=true")[0]
        == 0
    )
    refused(
        capsys,
        "train",
        "run",
        says=("game.state['points'] (the reward) became None on turn 3", "it must stay a finite number"),
    )


def test_ctrl_c_stops_both_processes_and_saves(tmp_path: Path):
    write_game(tmp_path, "slow", SLOW_GAME)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "retro_gamer.cli"]
    subprocess.run(
        [*cli, "create", "--game", "slow.py", "--output", "run", *QUICK, "trainer.game_process=true"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    # a terminal's Ctrl+C reaches every process of the foreground group: the trainer and its games' process
    proc = subprocess.Popen(
        [*cli, "train", "run", "--episodes", "100000"],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    for line in proc.stdout:
        if line.startswith("Training"):  # the games' process is up and answering
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Stopped at episode" in out and "Traceback" not in err
    assert checkpoint.load(tmp_path / "run" / checkpoint.RESUME_FILE)["second_process"] is True
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == []  # the games' process ended with its trainer
