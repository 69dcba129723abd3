"""Shared fixtures: tiny trainer settings so end-to-end runs take seconds on 2 cores."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "benchmarks"))  # the tests share its helpers (pipeline_copy), as its scripts do

# Small but real: the same code paths as a default run, just fewer and smaller steps.
TINY = [
    "trainer.num_envs=2",
    "trainer.warmup_steps=64",
    "trainer.batch_size=16",
    "trainer.train_every=4",
    "trainer.epsilon_decay_steps=500",
    "trainer.buffer_size=2000",
    "trainer.threads=1",
    "trainer.game_process=false",  # a tiny run would spend more starting a games' process than it saves (test_game_batch)
    "trainer.learner_process=false",  # … or a learner process (test_learner)
    "tracking.enabled=false",  # tracking has its own tests; the rest need no MLflow store
    "model.hidden=[32]",
]


@pytest.fixture(scope="session", autouse=True)
def sb3_logs_kept_in_pytest_tmp(tmp_path_factory) -> None:
    """SB3 makes a folder tempdir/SB3-<time> on every ``learn`` unless $SB3_LOGDIR names one: the suite's go to its
    own temporary folder (pruned by pytest), not /tmp, and the documented snippets it runs inherit that."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def run_module(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` the way a user does, in ``cwd``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs
    )


@pytest.fixture
def user_game(tmp_path: Path) -> Path:
    """A game project outside this repository: my_game.py + pyproject.toml with [tool.retro-gamer]."""
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "my_game.py").write_text(
        '''
from random import randint
from retro.game import Game


class Walker:
    name = "walker"
    character = "W"
    position = (0, 0)

    def handle_keystroke(self, keystroke, game):
        x, y = self.position
        dx = {"KEY_LEFT": -1, "KEY_RIGHT": 1}.get(keystroke.name, 0)
        if game.on_board((x + dx, y)):
            self.position = (x + dx, y)


class Goal:
    name = "goal"
    character = "G"

    def __init__(self):
        self.position = (7, 0)

    def play_turn(self, game):
        walker = game.get_agent_by_name("walker")
        if walker.position == self.position:
            game.state["points"] += 1
            game.end()


def create_game():
    walker = Walker()
    walker.position = (randint(0, 3), 0)
    return Game([walker, Goal()], {"points": 0}, board_size=(8, 1))


def not_a_game():
    return 42


def observe(game):
    """A custom observation: where the walker is, and a constant."""
    return [game.get_agent_by_name("walker").position[0] / 8.0, 1.0]
'''
    )
    (project / "pyproject.toml").write_text(
        """[project]
name = "my-game"
version = "0.1"

[tool.retro-gamer]
actions = ["KEY_LEFT", "KEY_RIGHT"]
reward = "points"
max_turns = 30
"""
    )
    return project


@pytest.fixture(scope="session")
def trained_snake(tmp_path_factory) -> Path:
    """A tiny but real snake run at <tmp>/runs/snake (checkpoints ep_0003 and ep_0006)."""
    from retro_gamer.config.compose import compose_app, run_config_from_hydra
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    root = tmp_path_factory.mktemp("project")
    run = root / "runs" / "snake"
    cfg = run_config_from_hydra(
        compose_app(["+game=snake", "trainer.episodes=6", "trainer.checkpoint_every=3", *TINY]), "snake"
    )
    train_run(run, prepare_run(cfg, run, "snake"), progress=False)
    return run


# A terminal's answer to "where is the cursor?" (DSR 6, ESC [ 6 n). Every VT100-style terminal sends it at once.
CURSOR_QUERY = b"\x1b[6n"
CURSOR_REPORT = b"\x1b[1;1R"


def run_in_terminal(command: list[str], cwd: Path, timeout: float = 120) -> str:
    """Run a command on a pseudo-terminal of 100x40 and return what it drew.

    Like a real terminal, it answers cursor-position queries: blessed's ``Terminal()`` probes the
    terminal that way (XTGETTCAP, XTVERSION, each followed by a cursor-position query as the end
    marker) and, left unanswered, waits 5 s per probe: 10 s for each ``Terminal()`` a game creates."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen(command, cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks, deadline, tail = [], time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
        seen = tail + data  # a query may arrive split over two reads
        asked = seen.count(CURSOR_QUERY)
        tail = seen[-(len(CURSOR_QUERY) - 1) :] if not seen.endswith(CURSOR_QUERY) else b""
        if asked:
            try:
                os.write(leader, CURSOR_REPORT * asked)
            except OSError:
                break
    proc.wait(timeout=10)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")
