"""Every game retro-gamer loads, as a Gymnasium environment (retro_gamer.adapters): the registered ids make, Gymnasium's
and Stable-Baselines3's environment checkers pass for every shipped game and for games written here, the game's own
randomness follows ``reset(seed=...)`` without touching the caller's, and the numbers are the trainer's."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from itertools import zip_longest
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import retro_gamer  # noqa: F401  (registers the ids)
from retro_gamer.adapters.gymnasium_env import CELL, OBSERVATIONS, RetroGameEnv
from retro_gamer.adapters.registration import ANY_GAME, GAMES, NAMESPACE
from retro_gamer.config.compose import compose_run
from retro_gamer.config.schema import available_games
from retro_gamer.env.environment import GameEnvironment
from retro_gamer.errors import RetroGamerError
from retro_gamer.games import game_factory
from retro_gamer.run.directory import prepare_run

# A game that draws from Python's global random every turn, both ways games do: `random.randint` and
# `from random import randint` (a bound method of the same hidden generator).
COIN_GAME = """
import random
from random import randint

from retro.game import Game


class Walker:
    name = "walker"
    character = "W"

    def __init__(self):
        self.position = (randint(0, 7), 0)

    def handle_keystroke(self, keystroke, game):
        x, y = self.position
        dx, dy = {"KEY_LEFT": (-1, 0), "KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_DOWN": (0, 1)}[keystroke.name]
        if game.on_board((x + dx, y + dy)):
            self.position = (x + dx, y + dy)


class Coin:
    name = "coin"
    character = "$"
    position = (7, 1)

    def play_turn(self, game):
        if game.get_agent_by_name("walker").position == self.position:
            game.state["coins"] += 1
            if game.state["coins"] == 3:
                game.end()
        self.position = (random.randint(0, 7), random.randint(0, 1))


def create_game():
    return Game([Walker(), Coin()], {"coins": 0}, board_size=(8, 2))
"""
COIN_PYPROJECT = """[project]
name = "coin-game"
version = "0.1"

[tool.retro-gamer]
actions = ["KEY_LEFT", "KEY_RIGHT", "KEY_UP", "KEY_DOWN"]
reward = "coins"
observe_state = ["coins"]
max_turns = 40
"""


@pytest.fixture
def coin_game(tmp_path: Path) -> Path:
    project = tmp_path / "coin_project"
    project.mkdir()
    (project / "coin_game.py").write_text(COIN_GAME)
    (project / "pyproject.toml").write_text(COIN_PYPROJECT)
    return project


def check_both(env: gymnasium.Env) -> None:
    """Gymnasium's checker, then SB3's, on the environment itself (``gymnasium.make`` wraps it)."""
    check_env(env.unwrapped, skip_render_check=env.render_mode is None)
    sb3_check_env(env.unwrapped, warn=True)


def test_import_registers_an_id_for_every_shipped_game_and_one_for_any_game():
    assert sorted(GAMES.values()) == available_games()
    registered = {name for name in gymnasium.registry if name.startswith(f"{NAMESPACE}/")}
    assert registered == {f"{NAMESPACE}/{name}" for name in [*GAMES, ANY_GAME]}


@pytest.mark.parametrize("env_id", list(GAMES))
def test_every_shipped_game_makes_by_id_and_passes_both_checkers(env_id: str):
    env = gymnasium.make(f"{NAMESPACE}/{env_id}", render_mode="ansi")
    game = env.unwrapped
    assert isinstance(game, RetroGameEnv) and game.description.name == GAMES[env_id]
    assert game.keys == [*game.description.actions, None]  # the trainer's order: the keys, then no key
    check_both(env)


@pytest.mark.parametrize("spec", ["my_game.py", "my_game", "my_game:create_game"])
def test_a_game_written_here_makes_by_spec_from_its_folder(user_game: Path, monkeypatch, spec: str):
    monkeypatch.chdir(user_game)  # resolved from the current folder, as `retro-gamer create --game SPEC` is
    env = gymnasium.make(f"{NAMESPACE}/{ANY_GAME}", game=spec, render_mode="rgb_array")
    assert set(env.observation_space.spaces) == {"board"}  # it observes no state value: the Dict has no "state"
    assert env.action_space.n == 3
    if spec == "my_game.py":
        check_both(env)


def test_a_game_with_observed_state_passes_both_checkers(coin_game: Path):
    env = RetroGameEnv("coin_game.py", base_dir=coin_game, render_mode="ansi")
    assert set(env.observation_space.spaces) == {"board", "state"}
    check_both(env)


def play(env: RetroGameEnv, seed: int, actions: list[int]) -> list[tuple]:
    """Two episodes from one seed: every observation, reward and ending, as comparable tuples."""
    return list(episodes(env, seed, actions))


def episodes(env: RetroGameEnv, seed: int, actions: list[int]):
    obs, _ = env.reset(seed=seed)
    yield (obs["board"].tobytes(), obs["state"].tobytes())
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        yield (obs["board"].tobytes(), obs["state"].tobytes(), reward, terminated, truncated)
        if terminated or truncated:
            obs, _ = env.reset()  # the episode after goes on from the same stream
            yield (obs["board"].tobytes(), obs["state"].tobytes())


def test_environments_stepped_alternately_play_as_each_alone_and_leave_the_callers_random_alone(coin_game: Path):
    actions = [random.Random(1).randrange(5) for _ in range(120)]  # more than one episode of 40 turns
    a, b = (RetroGameEnv("coin_game", base_dir=coin_game) for _ in range(2))
    alone_a, alone_b = play(a, 3, actions), play(b, 4, actions)
    assert alone_a != alone_b  # the seed decides the game
    assert play(a, 3, actions) == alone_a  # and the same seed, the same games

    random.seed(12345)
    callers = random.getstate()
    together_a: list[tuple] = []
    together_b: list[tuple] = []
    for step_a, step_b in zip_longest(episodes(a, 3, actions), episodes(b, 4, actions)):  # a turn each, in turn
        together_a += [step_a] if step_a is not None else []
        together_b += [step_b] if step_b is not None else []
    assert (together_a, together_b) == (alone_a, alone_b)
    assert random.getstate() == callers
    RetroGameEnv("coin_game", base_dir=coin_game)  # making one plays the game too (to find its characters)
    assert random.getstate() == callers


def test_the_end_of_the_game_terminates_and_max_turns_truncates(user_game: Path):
    env = RetroGameEnv("my_game.py", base_dir=user_game)  # max_turns = 30
    right, no_key = env.keys.index("KEY_RIGHT"), env.keys.index(None)
    env.reset(seed=0)
    for _ in range(8):  # the walker starts 4 to 7 cells left of the goal
        _, reward, terminated, truncated, info = env.step(right)
        if terminated:
            break
    assert (terminated, truncated, reward, info) == (True, False, 1.0, {"turns": info["turns"], "state": {"points": 1}})

    env.reset(seed=0)
    endings = [env.step(no_key)[2:4] for _ in range(30)]
    assert endings == [(False, False)] * 29 + [(False, True)]

    short = RetroGameEnv("my_game.py", overrides=["game.max_turns=5"], base_dir=user_game)
    short.reset(seed=0)
    assert [short.step(no_key)[3] for _ in range(5)] == [False] * 4 + [True]


def test_it_sees_what_the_trainer_sees(tmp_path: Path):
    """The observations of a run made as `retro-gamer create --game snake` makes it, from the same seed and keys."""
    env = RetroGameEnv("snake")
    cfg, source, _ = compose_run("snake", [])
    run = prepare_run(cfg, tmp_path / "run", source)
    trainer = GameEnvironment(run.game, game_factory(run.game, tmp_path / "run"), tmp_path / "run")
    actions = [random.Random(2).randrange(trainer.n_actions) for _ in range(60)]

    obs, _ = env.reset(seed=7)
    random.seed(7)  # the trainer's games draw from the global stream
    seen = trainer.reset()
    terminated = False
    for action in [None, *actions]:
        if action is not None:
            obs, reward, terminated, truncated, _ = env.step(action)
            seen, trainer_reward, trainer_terminated, trainer_truncated = trainer.step(action)
            assert (reward, terminated, truncated) == (trainer_reward, trainer_terminated, trainer_truncated)
        assert np.array_equal(obs["board"], seen.board.ravel()) and np.array_equal(obs["state"], seen.extras)
        if terminated:
            break


def test_the_one_hot_board_is_the_index_board_channel_by_channel(coin_game: Path):
    indices = RetroGameEnv("coin_game", base_dir=coin_game)
    onehot = RetroGameEnv("coin_game", observation="onehot", base_dir=coin_game)
    space = onehot.observation_space["board"]
    encoder = indices.game_env.encoder  # the walker reads the keyboard: retro-gamer's choice is a window around it
    assert isinstance(space, gymnasium.spaces.Box) and space.shape == (encoder.n_classes, *encoder.board_shape)
    check_both(onehot)
    board, hot = indices.reset(seed=1)[0]["board"], onehot.reset(seed=1)[0]["board"]
    for action in [1, 1, 3, 0]:
        assert (hot.sum(axis=0) == 1).all()
        assert np.array_equal(hot.argmax(axis=0).ravel(), board)
        board, hot = indices.step(action)[0]["board"], onehot.step(action)[0]["board"]
    with pytest.raises(RetroGamerError, match="observation must be one of indices, onehot"):
        RetroGameEnv("coin_game", observation="pixels", base_dir=coin_game)  # type: ignore[arg-type]


def test_stable_baselines3_learns_from_either_board_and_flattening_makes_one_array(coin_game: Path):
    from stable_baselines3 import DQN

    for observation in OBSERVATIONS:
        env = RetroGameEnv("coin_game", observation=observation, base_dir=coin_game)
        DQN("MultiInputPolicy", env, learning_starts=16, buffer_size=100, seed=0).learn(total_timesteps=48)
    flat = gymnasium.wrappers.FlattenObservation(RetroGameEnv("coin_game", base_dir=coin_game))
    obs, _ = flat.reset(seed=0)
    assert obs.shape == flat.observation_space.shape and obs.ndim == 1  # what CleanRL's scripts read


def test_ansi_shows_the_board_and_rgb_array_draws_it(user_game: Path):
    text = RetroGameEnv("my_game.py", base_dir=user_game, render_mode="ansi")
    text.reset(seed=0)
    lines = text.render().splitlines()
    assert lines[0] == lines[2] == "+--------+" and lines[3] == "points: 0"
    assert lines[1].startswith("|") and lines[1].endswith("G|") and lines[1].count("W") == 1

    image = gymnasium.wrappers.RenderCollection(
        gymnasium.make(f"{NAMESPACE}/{ANY_GAME}", game=str(user_game / "my_game.py"), render_mode="rgb_array")
    )
    image.reset(seed=0)
    image.step(image.unwrapped.keys.index("KEY_RIGHT"))
    first, moved = image.render()
    assert first.shape == (3 * CELL[1], 10 * CELL[0], 3) and first.dtype == np.uint8
    assert moved.shape == first.shape and not np.array_equal(first, moved)  # the walker moved
    assert len({tuple(pixel) for pixel in first.reshape(-1, 3)}) > 3  # background, frame and two characters


def test_record_video_writes_the_episode(user_game: Path, tmp_path: Path):
    pytest.importorskip("moviepy", reason="RecordVideo writes with moviepy, which no extra installs")
    env = gymnasium.wrappers.RecordVideo(
        RetroGameEnv("my_game.py", base_dir=user_game, render_mode="rgb_array"), str(tmp_path / "videos")
    )
    env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(1)
    env.close()
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_the_import_time_benchmark_records_what_registration_adds(tmp_path: Path):
    env = {**os.environ, "RETRO_GAMER_BENCHMARK_RESULTS": str(tmp_path)}  # the recorded results stay as they are
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "import_time.py"
    result = subprocess.run(
        [sys.executable, str(script), "--repeats", "1"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "added by registration:" in result.stdout
    figures = json.loads((tmp_path / "import_time.json").read_text())["figures"]
    assert set(figures) == {
        "import_with_registration_median_s",
        "import_without_gymnasium_median_s",
        "added_by_registration_s",
    }
