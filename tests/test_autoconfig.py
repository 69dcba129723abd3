"""What retro-gamer chooses for a game that leaves choices open, on real retro games (retro_gamer.config.autoconfig)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
from retro.game import Game

from retro_gamer.config.autoconfig import choose_network, crop_target, keyboard_agents, model_config
from retro_gamer.config.compose import apply_choices, compose_run
from retro_gamer.config.schema import TrainerConfig
from retro_gamer.env import observation
from retro_gamer.env.environment import declared_characters, discover_characters
from retro_gamer.env.observation import IndexView, UnseenCharacterWarning
from retro_gamer.games import load_factory

CHASE = "retro_gamer.examples.chase"
SMALL_BOARDS = Path(__file__).resolve().parent.parent / "benchmarks" / "small_boards"


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


@pytest.mark.parametrize(
    "spec, agent",
    [
        ("retro.examples.nav:create_game", "ship"),
        ("retro.examples.beast:create_game", "player"),
        ("retro.examples.snake:create_game", "Snake head"),
        (f"{CHASE}:create_enemy_training_game", "enemy"),
        (f"{CHASE}:create_player_training_game", "player"),
        ("retro_gamer.examples.gems:create_game", "player"),
    ],
)
def test_the_shipped_games_keyboard_agent(spec: str, agent: str):
    game = load_factory(spec)()
    assert [a.name for a in keyboard_agents(game)] == [agent]


# --- what each shipped game gets ----------------------------------------------------------------
@pytest.mark.parametrize(
    "game, overrides, crop, radius, network",
    [
        # 25x25: a window on the ship; spatial, but with 2 agents its turns are far quicker than a convolution's learning
        ("retro.examples.nav", [], "ship", 7, "mlp"),
        # 40x20, spatial, with 251 agents: cnn_small
        ("retro.examples.beast", [], "player", 7, "cnn_small"),
        ("snake", [], "Snake head", 5, "mlp"),  # the tuned conf/game/snake.yaml, exactly as before
        ("snake_plain", [], "Snake head", 7, "mlp"),  # snake with no window given
        (f"{CHASE}:create_enemy_training_game", [], "enemy", 3, "mlp"),  # its own 7x7 window
        (
            f"{CHASE}:create_player_training_game",
            ["game.reward=player_reward", "game.crop={agent: player, radius: 3}"],
            "player",
            3,
            "mlp",
        ),
        ("gems", [], "player", 7, "mlp"),  # walls, gems, ghosts
    ],
)
def test_each_shipped_game_gets_a_window_and_its_network(
    game: str, overrides: list[str], crop: str, radius: int, network: str
):
    cfg, _, why = compose_run(game, overrides)
    assert (cfg.game.crop.agent, cfg.game.crop.radius) == (crop, radius)
    assert f"window around '{crop}'" in why
    assert cfg.model == model_config(network) and f"model={network}" in why
    assert cfg.trainer.epsilon_decay_steps == 150_000 and cfg.trainer.exploration_fraction is None  # no budget
    assert set(cfg.chosen) == {"view", "network", "placement"}


def test_a_spatial_game_gets_a_convolution_where_its_many_agents_make_turns_slow():
    rule = {"mlp_max_inputs": 6000, "small_network": "mlp", "large_network": "cnn_small", "busy_game_agents": 100}
    assert choose_network(1125, True, 100, rule)[0] == "cnn_small"
    network, why = choose_network(1125, True, 99, rule)
    assert network == "mlp" and "would slow training" in why and "99 agents" in why
    assert choose_network(1125, False, 500, rule)[0] == "mlp"  # not spatial
    assert choose_network(7000, False, 2, rule)[0] == "cnn_small"  # too many inputs for an MLP


def test_the_tuned_snake_is_unchanged():
    cfg, _, why = compose_run("snake", [])
    assert "as the description says" in why
    placed = {"learner_process": cfg.trainer.learner_process, "game_process": cfg.trainer.game_process}
    assert cfg.game.observe_state == ["apple_dx", "apple_dy"]
    assert cfg.trainer == TrainerConfig(**placed, keep_checkpoints=10)  # conf/trainer/dqn.yaml's, for new runs


def test_a_small_board_is_seen_whole_when_asked():
    cfg, _, why = compose_run(f"{CHASE}:create_enemy_training_game", ["game.crop=null"])
    assert cfg.game.crop is None and "the whole board (game.crop is set to none)" in why
    assert cfg.model.kind.value == "mlp"


@pytest.mark.parametrize("game, size", [("stars", "20x10"), ("vault", "20x12")])
def test_a_small_board_with_one_keyboard_agent_gets_a_window(game: str, size: str):
    """The benchmarks' own small boards (200 and 240 cells): a window whatever the board's size."""
    cfg, _, why = compose_run(str(SMALL_BOARDS / game / f"{game}.py"), [])
    assert (cfg.game.crop.agent, cfg.game.crop.radius) == ("player", 7)
    assert "window around 'player' because 'player' reads the keyboard" in why and f"whole {size} board" in why
    assert cfg.model.kind.value == "mlp"  # 15x15 cells of a few characters: an MLP


def test_a_run_created_with_the_whole_board_keeps_it(tmp_path):
    """A run created before the window rule changed resumes as it was made, by the Hydra entry point too."""
    from retro_gamer.config.schema import read_config
    from retro_gamer.run.directory import prepare_run

    source = str(SMALL_BOARDS / "stars" / "stars.py")
    whole, _, _ = compose_run(source, ["game.crop=null", "tracking.enabled=false"])
    prepare_run(whole, tmp_path / "run", "stars")
    previous = read_config(tmp_path / "run")
    kept = apply_choices(
        dataclasses.replace(whole, game=dataclasses.replace(whole.game, crop=None)),
        explicit_crop=False,
        explicit_model=False,
        explicit_decay=False,
        previous=previous,
    )[0]
    assert kept.game.crop is None


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
        "def create_game():\n    return Game([Dot((1, 1)), Mark()], {'score': 0}, board_size=(64, 48))\n"
    )
    (tmp_path / "pyproject.toml").write_text('[tool.retro-gamer]\nactions = ["KEY_UP"]\nreward = "score"\n')
    monkeypatch.chdir(tmp_path)
    cfg, _, why = compose_run("big_game.py", [])
    assert cfg.game.crop is None and "no visible agent reads the keyboard" in why
    assert cfg.model.kind.value == "cnn" and cfg.model.channels == [8, 16] and "model=cnn_small" in why


# --- exploration sized to the budget ------------------------------------------------------------
def test_a_budget_sizes_exploration_and_says_so():
    cfg, _, why = compose_run("retro.examples.beast", ["trainer.time_limit=0.2"])
    assert cfg.trainer.exploration_fraction == 0.5 and cfg.trainer.epsilon_decay_steps == 150_000
    assert "the env steps trainer.time_limit = 0.2 min gives (measured in the run" in cfg.chosen["exploration"]
    cfg, _, why = compose_run("retro.examples.nav", ["trainer.total_env_steps=60000"])
    assert cfg.trainer.exploration_fraction == 0.5 and "of the 60,000 env steps of trainer.total_env_steps" in why
    for explicit in ("trainer.epsilon_decay_steps=777", "trainer.exploration_fraction=0.2"):
        cfg, _, why = compose_run("retro.examples.beast", ["trainer.time_limit=0.2", explicit])
        assert "epsilon" not in why and "exploration" not in cfg.chosen
    assert cfg.trainer.exploration_fraction == 0.2


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
    with pytest.warns(
        UnseenCharacterWarning, match=r"(?s)drew 'd'.*not in the character set 'A'.*character_set"
    ) as caught:
        view.render(game)
        view.render(game)
    assert len(caught) == 1
    assert view.grid[2, 2] == 0 and view.grid[1, 1] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IndexView(["A", "d"], (4, 4)).render(game)  # known characters: no warning


def test_nav_as_shipped_trains_without_warnings(tmp_path):
    """Its explosion is drawn only as the game ends, where nothing is chosen or learned from it: no warning."""
    from conftest import TINY

    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    cfg, _, _ = compose_run("retro.examples.nav", [*TINY, "trainer.episodes=12"])
    assert "*" not in cfg.game.character_set  # its pyproject.toml lists ["^", "O"]
    observation._warned.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = train_run(tmp_path / "nav", prepare_run(cfg, tmp_path / "nav", "nav"), progress=False)
    assert summary["episodes"] == 12  # every game ended by a crash, each drawing the explosion


def test_a_factory_that_returns_no_game_is_refused_before_anything_is_chosen(user_game, monkeypatch):
    from retro_gamer.errors import ConfigError

    monkeypatch.chdir(user_game)
    with pytest.raises(ConfigError, match="returned int, not a retro.game.Game"):
        compose_run("my_game:not_a_game", [])
