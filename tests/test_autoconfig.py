"""What retro-gamer chooses for a game that leaves choices open, on real retro games (retro_gamer.autoconfig)."""

from __future__ import annotations

import re
import warnings

import pytest
from retro.game import Game

from retro_gamer import autoconfig, observation
from retro_gamer.autoconfig import (StepCosts, choose_network, crop_target, exploration_steps, keyboard_agents, model_config,
                                    rules)
from retro_gamer.compose import compose_run
from retro_gamer.config import TrainerConfig
from retro_gamer.env import declared_characters, discover_characters
from retro_gamer.games import load_factory
from retro_gamer.observation import IndexView, UnseenCharacterWarning

CHASE = "retro_gamer.examples.chase"


class Pilot:
    """Moves with the arrow keys."""

    character = "A"

    def __init__(self, name: str, position: tuple[int, int]):
        self.name, self.position = name, position

    def handle_keystroke(self, keystroke, game) -> None:
        pass


class Drifter:
    """Moves on its own; reads no keys."""

    character = "d"

    def __init__(self, position: tuple[int, int]):
        self.position = position

    def play_turn(self, game) -> None:
        pass


def game_with(*agents, size: tuple[int, int] = (30, 30)) -> Game:
    return Game(list(agents), {"score": 0}, board_size=size)


# --- the agent finder -----------------------------------------------------------------------
def test_one_keyboard_agent_is_found_among_others():
    pilot = Pilot("pilot", (3, 3))
    game = game_with(Drifter((1, 1)), pilot, Drifter((2, 2)))
    assert keyboard_agents(game) == [pilot]
    target, reason = crop_target(game)
    assert target is pilot and "'pilot' reads the keyboard" in reason


def test_no_keyboard_agent():
    game = game_with(Drifter((1, 1)))
    assert keyboard_agents(game) == []
    target, reason = crop_target(game)
    assert target is None and "no visible agent reads the keyboard" in reason


def test_several_keyboard_agents_are_all_found_and_none_is_guessed():
    first, second = Pilot("left", (1, 1)), Pilot("right", (5, 5))
    game = game_with(first, Drifter((2, 2)), second)
    assert keyboard_agents(game) == [first, second]
    target, reason = crop_target(game)
    assert target is None and "2 agents read the keyboard ('left', 'right')" in reason and "game.crop" in reason


def test_a_keyboard_agent_without_a_name_cannot_be_followed():
    class Anonymous:
        character, position = "A", (1, 1)

        def handle_keystroke(self, keystroke, game) -> None:
            pass

    game = game_with(Anonymous())
    target, reason = crop_target(game)
    assert target is None and "has no name" in reason


@pytest.mark.parametrize("spec, agent", [
    ("retro.examples.nav:create_game", "ship"),
    ("retro.examples.beast:create_game", "player"),
    ("retro.examples.snake:create_game", "Snake head"),
    (f"{CHASE}:create_enemy_training_game", "enemy"),
    (f"{CHASE}:create_player_training_game", "player"),
    ("retro_gamer.examples.gems:create_game", "player"),
])
def test_the_shipped_games_keyboard_agent(spec: str, agent: str):
    game = load_factory(spec)()
    assert [a.name for a in keyboard_agents(game)] == [agent]


# --- what each shipped game gets ----------------------------------------------------------------
@pytest.mark.parametrize("game, overrides, crop, radius, network", [
    # 25x25: a window on the ship; spatial, but its turns are far quicker than a convolution's learning
    ("retro.examples.nav", [], "ship", 7, "mlp"),
    # 40x20, spatial, and that learning (0.74-0.81 ms here) is within 2 turns (0.52-0.93 ms each): cnn_small,
    # unless a very busy machine timed them otherwise (the rule itself is tested below)
    ("retro.examples.beast", [], "player", 7, None),
    ("snake", [], "Snake head", 5, "mlp"),  # the tuned conf/game/snake.yaml, exactly as before
    ("snake_plain", [], "Snake head", 7, "mlp"),  # snake with no window given
    (f"{CHASE}:create_enemy_training_game", [], "enemy", 3, "mlp"),  # its own 7x7 window
    (f"{CHASE}:create_player_training_game", ["game.reward=player_reward", "game.crop={agent: player, radius: 3}"],
     "player", 3, "mlp"),
    ("gems", [], "player", 7, "mlp"),  # walls, gems, ghosts
])
def test_each_shipped_game_gets_a_window_and_its_network(game: str, overrides: list[str], crop: str, radius: int,
                                                         network: str | None):
    cfg, _, why = compose_run(game, overrides)
    assert (cfg.game.crop.agent, cfg.game.crop.radius) == (crop, radius)
    assert f"window around '{crop}'" in why
    if cfg.game.spatial:  # the reason gives the two timings it compared, and the choice follows them
        learning, turn = map(float, re.search(r"learning, ([\d.]+) ms per env step, against the game's own ([\d.]+) ms", why).groups())
        expected = "cnn_small" if learning <= rules()["spatial_cnn_max_learning_share"] * turn else "mlp"
        network = network or expected
        assert network == expected
    assert cfg.model == model_config(network) and f"model={network}" in why
    assert cfg.trainer.epsilon_decay_steps == 150_000  # no time limit: the configured schedule


def test_a_spatial_game_gets_a_convolution_where_its_turns_hide_the_learning():
    rule = {"mlp_max_inputs": 6000, "small_network": "mlp", "large_network": "cnn_small", "spatial_cnn_max_learning_share": 2.0}
    timed = []

    def costs(learning_ms: float):
        def of(option: str, threads: int) -> StepCosts:
            timed.append((option, threads))
            return StepCosts(game=0.9e-3, learning=learning_ms * 1e-3, acting=0.0)
        return of

    assert choose_network(1125, True, rule, costs(0.7))[0] == "cnn_small"
    assert timed == [("cnn_small", 1)]  # the convolution, on the learner process's one thread
    assert choose_network(1125, True, rule, costs(1.79))[0] == "cnn_small"  # within 2 turns
    network, why = choose_network(1125, True, rule, costs(1.81))
    assert network == "mlp" and "would slow training" in why and "1.81 ms per env step" in why
    assert choose_network(1125, False, rule, costs(0.1))[0] == "mlp"  # not spatial: nothing timed
    assert choose_network(7000, False, rule, costs(0.1))[0] == "cnn_small" and len(timed) == 3


def test_the_tuned_snake_is_unchanged():
    cfg, _, why = compose_run("snake", [])
    assert "as the description says" in why
    assert cfg.game.observe_state == ["apple_dx", "apple_dy"] and cfg.trainer == TrainerConfig()


def test_a_small_board_is_seen_whole():
    cfg, _, why = compose_run(f"{CHASE}:create_enemy_training_game", ["game.crop=null"])
    assert cfg.game.crop is None and "the whole board (game.crop is set to none)" in why
    assert cfg.model.kind.value == "mlp"


def test_explicit_choices_win():
    cfg, _, why = compose_run("retro.examples.nav", ["model=cnn", "model.channels=[4,8]", "game.crop=null"])
    assert cfg.game.crop is None and cfg.model.kind.value == "cnn" and cfg.model.channels == [4, 8]
    assert "model=cnn (your override)" in why
    cfg, _, _ = compose_run("retro.examples.nav", ["model.hidden=[32]", "game.crop={agent: ship, radius: 2}"])
    assert cfg.game.crop.radius == 2 and cfg.model.hidden == [32] and cfg.model.kind.value == "mlp"
    cfg, _, _ = compose_run("snake_plain", ["+game.crop=null"])
    assert cfg.game.crop is None and cfg.model.kind.value == "mlp"  # 32x16x6 one-hot inputs still suit an MLP


def test_a_large_board_without_a_window_gets_the_small_cnn(tmp_path, monkeypatch):
    (tmp_path / "big_game.py").write_text(
        "from retro.game import Game\n"
        "class Dot:\n    character = 'o'\n    def __init__(self, p): self.position = p\n"
        "class Mark:\n    character = 'x'\n    position = (0, 0)\n"
        "def create_game():\n    return Game([Dot((1, 1)), Mark()], {'score': 0}, board_size=(64, 48))\n")
    (tmp_path / "pyproject.toml").write_text('[tool.retro-gamer]\nactions = ["KEY_UP"]\nreward = "score"\n')
    monkeypatch.chdir(tmp_path)
    cfg, _, why = compose_run("big_game.py", [])
    assert cfg.game.crop is None and "no visible agent reads the keyboard" in why
    assert cfg.model.kind.value == "cnn" and cfg.model.channels == [8, 16] and "model=cnn_small" in why


# --- exploration sized to the time budget -----------------------------------------------------
def test_exploration_shortens_for_a_short_budget_and_never_lengthens():
    assert exploration_steps(1, 1500, 150_000, 0.5) == 40_000  # 45,000 -> one significant figure
    assert exploration_steps(3, 1500, 150_000, 0.5) == 150_000  # close enough: the tuned value stays
    assert exploration_steps(60, 5000, 150_000, 0.5) == 150_000
    assert exploration_steps(0.1, 10, 150_000, 0.5) == 1_000


def test_a_time_limit_sizes_exploration_and_says_so(monkeypatch):
    timed = []
    time_game_turn = autoconfig.time_game_turn
    monkeypatch.setattr(autoconfig, "time_game_turn", lambda *a, **k: timed.append(a) or time_game_turn(*a, **k))
    cfg, _, why = compose_run("retro.examples.beast", ["trainer.time_limit=0.2"])
    assert cfg.trainer.epsilon_decay_steps < 150_000 and "epsilon decays over" in why
    assert len(timed) == 1  # the network rule and the exploration estimate share one timing of the game
    cfg, _, why = compose_run("retro.examples.beast", ["trainer.time_limit=0.2", "trainer.epsilon_decay_steps=777"])
    assert cfg.trainer.epsilon_decay_steps == 777 and "epsilon" not in why


# --- characters ---------------------------------------------------------------------------------
def test_characters_are_found_without_being_drawn():
    assert "*" in declared_characters(load_factory("retro.examples.snake:create_game"))  # a body needs an apple first
    assert declared_characters(load_factory("retro.examples.beast:create_game")) == {"*", "H", "█"}
    nav = discover_characters(load_factory("retro.examples.nav:create_game"), ["KEY_LEFT", "KEY_RIGHT"], 600, 0)
    assert "*" in nav  # the ship's explosion, drawn only on the last turn


def test_an_unseen_character_is_blank_with_one_warning_naming_it():
    pilot = Pilot("pilot", (1, 1))
    game = game_with(pilot, Drifter((2, 2)), size=(4, 4))
    view = IndexView(["A"], (4, 4))
    observation._warned.discard(("d", "A"))
    with pytest.warns(UnseenCharacterWarning, match=r"(?s)drew 'd'.*not in the character set 'A'.*character_set") as caught:
        view.render(game)
        view.render(game)
    assert len(caught) == 1
    assert view.grid[2, 2] == 0 and view.grid[1, 1] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IndexView(["A", "d"], (4, 4)).render(game)  # known characters: no warning


def test_a_factory_that_returns_no_game_is_refused_before_anything_is_chosen(user_game, monkeypatch):
    from retro_gamer.errors import ConfigError

    monkeypatch.chdir(user_game)
    with pytest.raises(ConfigError, match="returned int, not a retro.game.Game"):
        compose_run("my_game:not_a_game", [])
