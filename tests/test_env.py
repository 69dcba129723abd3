"""The environment over a real snake game: rewards, endings, and what the network sees."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from retro.input import ProgrammaticInput
from retro.views import HeadlessView

from retro_gamer.env.environment import GameEnvironment, discover_characters
from retro_gamer.env.observation import IndexView, turn_map
from retro_gamer.games import Crop, load_factory, parse_description
from retro_gamer.run.directory import resolve_game

SNAKE = {
    "factory": "retro.examples.snake:create_game",
    "actions": ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN"],
    "reward": "reward",
    "character_set": ["*", "<", ">", "@", "^", "v"],
}


def make_env(**extra) -> GameEnvironment:
    desc = resolve_game(parse_description({**SNAKE, **extra}, "t"), "t", Path.cwd(), 10, 0)
    return GameEnvironment(desc, load_factory(desc.factory))


def test_reward_is_the_change_of_the_reward_key_and_death_terminates():
    random.seed(1)
    env = make_env()
    env.reset()
    total, before = 0.0, env.game.state["reward"]
    for _ in range(200):
        _, reward, terminated, truncated = env.step(4)  # no-op: the snake runs into a wall
        total += reward
        if terminated:
            break
    assert terminated and not truncated
    assert total == env.game.state["reward"] - before


def test_max_turns_truncates_without_terminating():
    random.seed(2)
    env = make_env(max_turns=3)
    env.reset()
    results = [env.step(4)[2:] for _ in range(3)]
    assert results[-1] == (False, True) or results[-1][0]  # truncated at turn 3 unless the snake died first
    assert all(not trunc for _, trunc in results[:-1])


def test_board_indices_match_the_stock_headless_view():
    random.seed(3)
    env = make_env()
    obs = env.reset()
    for _ in range(5):
        obs, *_ = env.step(random.randrange(5))
    stock = HeadlessView()
    stock.render(env.game)
    chars = [" "] + SNAKE["character_set"]
    decoded = [[chars[i] for i in row] for row in obs.board.tolist()]
    assert decoded == stock.board_characters
    assert env.encoder.view.board_characters == stock.board_characters
    assert obs.board.dtype == np.uint8


def test_egocentric_crop_centres_on_the_agent_and_marks_the_edge():
    random.seed(4)
    env = make_env(crop={"agent": "Snake head", "radius": 2}, observe_state=["apple_dx", "apple_dy"])
    obs = env.reset()
    head = env.game.get_agent_by_name("Snake head")
    assert obs.board.shape == (5, 5)
    assert obs.board[2, 2] == 1 + SNAKE["character_set"].index(head.character)
    head.position = (0, 0)  # the corner: two rows above and two columns left are off the board
    env.game._position_cache = None
    obs = env.encoder.encode(env.game, rendered=False)
    off = len(SNAKE["character_set"]) + 1
    assert (obs.board[:2, :] == off).all() and (obs.board[:, :2] == off).all()
    assert (obs.board[2:, 2:] != off).all()
    np.testing.assert_allclose(obs.extras, [env.game.state["apple_dx"], env.game.state["apple_dy"]])


@pytest.mark.parametrize("before", ["", "Ticker(), "], ids=["no play_turn", "play_turn before the slider"])
def test_the_board_follows_agents_that_move_on_keystrokes_alone(tmp_path: Path, before: str):
    """retro refreshes its positions cache only after a play_turn; a game without one, or with none after the
    agent that moves on keystrokes, must not look frozen."""
    (tmp_path / "slider.py").write_text(
        "from retro.game import Game\n"
        "class Ticker:\n"
        "    display = False\n"
        "    def play_turn(self, game):\n"
        "        pass\n"
        "class Slider:\n"
        "    name = 'slider'\n"
        "    character = 'S'\n"
        "    position = (0, 0)\n"
        "    def handle_keystroke(self, keystroke, game):\n"
        "        x, y = self.position\n"
        "        if keystroke.name == 'KEY_RIGHT' and x < 4:\n"
        "            self.position = (x + 1, y)\n"
        "def create_game():\n"
        f"    return Game([{before}Slider()], {{'x': 0}}, board_size=(5, 1))\n"
    )
    desc = resolve_game(
        parse_description({"factory": "slider.py", "actions": ["KEY_RIGHT"], "reward": "x"}, "t"), "t", tmp_path, 10, 0
    )
    env = GameEnvironment(desc, load_factory(desc.factory, tmp_path), tmp_path)
    assert env.reset().board.tolist() == [[1, 0, 0, 0, 0]]
    assert env.step(0)[0].board.tolist() == [[0, 1, 0, 0, 0]]
    assert env.step(0)[0].board.tolist() == [[0, 0, 1, 0, 0]]


@pytest.mark.parametrize(
    "factory",
    [
        "retro_gamer.examples.gems:create_game",
        "retro.examples.beast:create_game",
        "retro.examples.nav:create_game",
        "retro.examples.snake:create_game",
    ],
)
def test_retros_map_of_the_turn_draws_what_the_agents_show(factory: str):
    """After each turn the view draws from retro's own map of it where that is current (each of these games), and
    that agrees cell for cell with drawing from the agents themselves, turn after turn, crushed beasts included."""
    random.seed(5)
    game_factory = load_factory(factory)
    characters = sorted(set(discover_characters(game_factory, ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN"], 300, 0)))
    keys = ProgrammaticInput()
    turns = 0
    while turns < 600:
        game = game_factory()
        view = IndexView(characters, game.board_size)
        game.input_source, game.view = keys, view
        game.start()
        while game.playing and turns < 600:
            keys.press(random.choice(["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None]))
            game.step()
            turns += 1
            assert turn_map(game, {}) is not None
            drawn = view.grid.copy()
            view.redraw(game)
            assert (drawn == view.grid).all(), f"turn {game.turn_number}"


@pytest.mark.parametrize(
    ("factory", "agent"),
    [("retro.examples.beast:create_game", "player"), ("retro.examples.snake:create_game", "Snake head")],
)
def test_a_cropped_view_draws_its_window_as_the_whole_board_shows_it(factory: str, agent: str):
    """With a crop the view draws only the window (beast's holds about a quarter of its agents); cell for cell
    that window is the whole board's drawing cut around the agent, edges, deaths and restarts included."""
    random.seed(3)
    game_factory = load_factory(factory)
    characters = sorted(set(discover_characters(game_factory, ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN"], 300, 0)))
    crop = Crop(agent=agent, radius=4)
    keys, turns, outside = ProgrammaticInput(), 0, 0
    while turns < 600:
        game = game_factory()
        cropped, whole = IndexView(characters, game.board_size, crop), IndexView(characters, game.board_size, None)
        game.input_source, game.view = keys, cropped
        game.start()
        while turns < 600:
            whole.redraw(game)
            x, y = cropped.center
            side = 2 * crop.radius + 1
            padded = np.pad(whole.grid, crop.radius, constant_values=whole.off_board)
            assert (cropped.window() == padded[y : y + side, x : x + side]).all(), f"turn {game.turn_number}"
            outside += int(whole.grid.astype(bool).sum() > cropped.grid.astype(bool).sum())
            if not game.playing:
                break
            keys.press(random.choice(["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None]))
            game.step()
            turns += 1
    assert outside > 0  # agents outside the window were left out of the drawing
