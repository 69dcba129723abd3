"""The chase example: rules on real games, opponents loaded once, and both `retro-gamer create` commands."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
from retro.input import ProgrammaticInput

from retro_gamer.errors import RetroGamerError
from retro_gamer.examples import chase
from retro_gamer.games import description_from_pyproject

CLI = str(Path(sys.executable).parent / "retro-gamer")
ENEMY_GAME = "retro_gamer.examples.chase:create_enemy_training_game"
PLAYER_GAME = "retro_gamer.examples.chase:create_player_training_game"
PLAYER_OVERRIDES = ["game.reward=player_reward", "game.crop={agent: player, radius: 3}"]


class Still:
    """An opponent policy that never presses a key."""

    def get_action(self, game):
        return None


@pytest.fixture(scope="session")
def enemy_run(tmp_path_factory) -> Path:
    """A tiny but real enemy run of chase (two episodes), loadable with TrainedPolicy."""
    from retro_gamer.config.compose import compose_run
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    run = tmp_path_factory.mktemp("chase") / "runs" / "enemy"
    cfg, source, _ = compose_run(ENEMY_GAME, [*TINY, "trainer.episodes=2", "trainer.checkpoint_every=2"])
    train_run(run, prepare_run(cfg, run, source), progress=False)
    return run


def started(game):
    game.input_source = ProgrammaticInput()
    game.start()
    return game


def press(game, key):
    game.input_source.press(key)
    game.step()


def place(game, player, enemy):
    game.get_agent_by_name("player").position = player
    game.get_agent_by_name("enemy").position = enemy
    for number, spot in ((1, (15, 0)), (2, (15, 9))):  # coins out of the way
        game.get_agent_by_name(f"coin {number}").position = spot


def test_the_board_has_walls_and_every_variant_the_same_state_keys():
    games = [chase.create_enemy_training_game(), chase.create_player_training_game(), chase.create_match_game()]
    assert {frozenset(g.state) for g in games} == {frozenset(games[0].state)}
    desc = description_from_pyproject(ENEMY_GAME)
    for game in games:
        assert game.board_size == chase.BOARD_SIZE
        assert set(desc.observe_state) <= set(game.state) and {"player_reward", "enemy_reward"} <= set(game.state)
        walls = [a for a in game.agents if isinstance(a, chase.Wall)]
        assert len(walls) == sum(row.count("#") for row in chase.LAYOUT) > 10
        player, enemy = game.get_agent_by_name("player"), game.get_agent_by_name("enemy")
        assert chase.path_distance(game, player.position, enemy.position) >= chase.START_GAP
    assert desc.max_turns == chase.TURN_LIMIT and desc.character_set == chase.CHARACTERS


def test_walls_and_edges_block_movement():
    game = started(chase.create_player_training_game(opponent=Still()))
    place(game, player=(1, 3), enemy=(12, 9))
    assert (1, 2) in chase.walls_of(game)
    press(game, "KEY_UP")  # a wall above
    assert game.get_agent_by_name("player").position == (1, 3)
    press(game, "KEY_LEFT")
    press(game, "KEY_LEFT")  # the board's edge
    assert game.get_agent_by_name("player").position == (0, 3)
    press(game, None)
    assert game.get_agent_by_name("player").position == (0, 3) and game.playing


@pytest.mark.parametrize("variant, key", [("enemy", "KEY_LEFT"), ("player", "KEY_RIGHT")])
def test_a_catch_ends_the_game_and_rewards_both_sides(variant, key):
    factory = chase.create_enemy_training_game if variant == "enemy" else chase.create_player_training_game
    game = started(factory(opponent=Still()))
    place(game, player=(7, 2), enemy=(8, 2))
    press(game, key)  # the enemy steps onto the player, or the player into the enemy
    assert not game.playing
    assert game.state["caught"] == 1
    assert game.state["enemy_reward"] == chase.CATCH == 1
    assert game.state["player_reward"] == chase.CAUGHT == -1
    assert chase.outcome(game) == {"player": "loss", "enemy": "win"}


def test_coins_score_and_respawn():
    random.seed(3)
    game = started(chase.create_player_training_game(opponent=Still()))
    place(game, player=(7, 2), enemy=(12, 9))
    coin = game.get_agent_by_name("coin 1")
    coin.position = (8, 2)
    press(game, "KEY_RIGHT")
    assert game.state["coins"] == 1 and game.playing
    assert game.state["player_reward"] > chase.COIN - 0.1  # the coin, give or take the shaping
    assert game.state["enemy_reward"] < -chase.COIN + 0.1  # zero-sum: the enemy loses what the player gains
    assert coin.position not in chase.walls_of(game) and game.on_board(coin.position)
    assert coin.position not in {(8, 2), game.get_agent_by_name("coin 2").position}
    assert chase.path_distance(game, (8, 2), coin.position) >= chase.COIN_GAP


def test_the_turn_limit_wins_for_the_enemy_so_hiding_loses():
    game = started(chase.create_match_game(player=Still(), enemy=Still(), turn_limit=5))
    for _ in range(4):
        game.step()
    assert game.playing and game.state["clock"] == pytest.approx(4 / 5)
    assert game.state["player_reward"] == 0 and game.state["enemy_reward"] == 0  # nobody moved: no shaping either
    game.step()
    assert not game.playing and game.state["turn"] == 5 and game.state["caught"] == 0  # a catch it was not
    assert game.state["player_reward"] == chase.CAUGHT and game.state["enemy_reward"] == chase.CATCH  # paid as one
    assert chase.outcome(game) == {"player": "loss", "enemy": "win"}


def test_a_game_stopped_before_the_turn_limit_is_a_draw():
    game = started(chase.create_match_game(player=Still(), enemy=Still(), turn_limit=5))
    game.step()
    game.end()
    assert chase.outcome(game) == {"player": "draw", "enemy": "draw"}


def test_the_last_coin_wins_for_the_player():
    game = started(chase.create_player_training_game(opponent=Still()))
    place(game, player=(7, 2), enemy=(12, 9))
    game.state["coins"] = chase.COINS_TO_WIN - 1
    game.get_agent_by_name("coin 1").position = (8, 2)
    press(game, "KEY_RIGHT")
    assert not game.playing and game.state["coins"] == chase.COINS_TO_WIN
    assert chase.outcome(game) == {"player": "win", "enemy": "loss"}


@pytest.mark.parametrize(
    "state, player",
    [
        ({"caught": 1, "coins": 0, "turn": 40}, "loss"),
        ({"caught": 1, "coins": chase.COINS_TO_WIN - 1, "turn": 40}, "loss"),
        ({"caught": 0, "coins": chase.COINS_TO_WIN, "turn": 40}, "win"),
        ({"caught": 0, "coins": chase.COINS_TO_WIN, "turn": chase.TURN_LIMIT}, "win"),  # the last coin on the last turn
        ({"caught": 0, "coins": chase.COINS_TO_WIN - 1, "turn": chase.TURN_LIMIT}, "loss"),  # out of time
        ({"caught": 0, "coins": 0, "turn": chase.TURN_LIMIT}, "loss"),
        ({"caught": 0, "coins": chase.COINS_TO_WIN - 1, "turn": 40}, "draw"),  # stopped early
        ({"caught": 0, "coins": 0, "turn": 0}, "draw"),
    ],
)
def test_the_outcome_of_constructed_positions(state, player):
    class Finished:
        pass

    game = Finished()
    game.state = state
    other = {"win": "loss", "loss": "win", "draw": "draw"}[player]
    assert chase.outcome(game) == {"player": player, "enemy": other}


def test_returns_add_up_to_the_outcome_give_or_take_shaping():
    """Zero-sum but for shaping: over whole scripted games, the two returns sum to the shaping alone, which
    is bounded by the board (potential-based), and each return has the sign of its side's outcome."""
    random.seed(5)
    for _ in range(20):
        game = started(chase.create_match_game(player=None, enemy=None))
        while game.playing:
            game.step()
        state, result = game.state, chase.outcome(game)
        core = state["coins"] * chase.COIN - (result["player"] == "loss")  # a catch or the clock
        assert abs(state["player_reward"] - core) < chase.COIN_STEP * chase.GAP_SCALE * (state["coins"] + 1)
        assert abs(state["enemy_reward"] + core) <= chase.ENEMY_STEP * chase.GAP_SCALE
        if result["player"] == "win":
            assert core == pytest.approx(1)
        elif result["player"] == "loss":
            assert core < 0


def test_scripted_baselines_differ_from_random_play():
    random.seed(0)
    catches = {}
    for name, enemy in (("chaser", None), ("random", chase.RandomPolicy())):
        caught = 0
        for _ in range(10):
            game = started(chase.create_match_game(player=chase.RandomPolicy(), enemy=enemy, turn_limit=100))
            while game.playing:
                game.step()
            caught += game.state["caught"]
        catches[name] = caught
    assert catches["chaser"] >= 9 and catches["random"] <= 7


def test_the_integration_guide_classes_work_in_a_bare_game():
    from retro.game import Game

    random.seed(1)
    enemy, player = chase.EnemyAgent(), chase.RandomPlayer()
    game = started(Game([enemy, player], {"enemy_reward": 0}, board_size=(32, 16)))
    for _ in range(50):
        press(game, "KEY_RIGHT")
        if not game.playing:
            break
    assert enemy.position != (2, 2) and game.state["enemy_reward"] in (0, 1)


def test_an_opponent_run_is_loaded_once_per_process_and_plays(enemy_run: Path):
    chase._load_policy.cache_clear()
    first = chase.create_player_training_game(opponent=str(enemy_run))
    second = chase.create_player_training_game(opponent=str(enemy_run))
    match = chase.create_match_game(player=None, enemy=str(enemy_run))
    policies = {id(g.get_agent_by_name("enemy").policy) for g in (first, second, match)}
    assert len(policies) == 1
    assert chase._load_policy.cache_info().misses == 1
    policy = first.get_agent_by_name("enemy").policy
    assert policy.encoder.crop.agent == "enemy"  # it sees the board from the enemy, as in training
    game = started(first)
    for _ in range(20):
        press(game, "KEY_LEFT")
        if not game.playing:
            break
    assert game.state["turn"] >= 1
    assert policy.get_action(game) in [*chase.KEYS, None]
    with pytest.raises(RetroGamerError, match="trained as the enemy"):
        chase.create_enemy_training_game(opponent=str(enemy_run))


def cli(*args: str, cwd: Path) -> str:
    result = subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_both_create_commands_work(tmp_path: Path, enemy_run: Path):
    out = cli("create", "--game", ENEMY_GAME, "--output", "runs/enemy", "tracking.enabled=false", cwd=tmp_path)
    assert "7x7 window around 'enemy'" in out and "game.state['enemy_reward']" in out
    out = cli(
        "create",
        "--game",
        PLAYER_GAME,
        "--output",
        "runs/player",
        *PLAYER_OVERRIDES,
        f"game.opponent={enemy_run}",
        "tracking.enabled=false",
        cwd=tmp_path,
    )
    assert "7x7 window around 'player'" in out and "game.state['player_reward']" in out
    text = (tmp_path / "runs" / "player" / "config.toml").read_text()
    assert "create_player_training_game" in text and "opponent" in text


def test_a_human_plays_against_a_trained_enemy_example(enemy_run: Path):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("play_vs_champion", REPO / "examples" / "play_vs_champion.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    game = started(example.create_game(str(enemy_run)))
    for _ in range(30):
        if not game.playing:
            break
        press(game, "KEY_LEFT")  # the human's keys
    assert game.turn_number > 0


@pytest.mark.parametrize(
    "recorded, was, created",
    [
        ("", r"version 1 .*survi", "an earlier version"),
        ('rules = "2"\n', r"version 2: 5 coins win", "version 2"),
        ('rules = "3"\n', r"version 3: 3 coins win .* else a draw", "version 3"),
    ],
    ids=["before-versions", "version-2", "version-3"],
)
def test_a_policy_trained_on_other_rules_is_refused_saying_was_and_now(
    enemy_run: Path, tmp_path: Path, recorded: str, was: str, created: str
):
    import shutil
    from dataclasses import replace

    from retro_gamer.config.schema import read_config
    from retro_gamer.launch import train_run

    assert 'rules = "4"' in (enemy_run / "config.toml").read_text()
    old = tmp_path / "old_enemy"
    shutil.copytree(enemy_run, old)
    config = old / "config.toml"
    config.write_text(config.read_text().replace('rules = "4"\n', recorded))  # as a run made under older rules
    with pytest.raises(
        RetroGamerError, match=rf"(?s)trained on {was}.*chase is now version 4: 3 coins within 200 turns win"
    ):
        chase.create_player_training_game(opponent=str(old))
    with pytest.raises(RetroGamerError, match=f"created under {created} .* now at version 4"):
        cfg = read_config(old)
        train_run(old, replace(cfg, trainer=replace(cfg.trainer, episodes=4)), progress=False)
