"""Opponent pools on real chase games: deterministic draws by share, one member per game for all its turns,
the shares of a pool over any number of generations, and the pool file."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from retro.input import ProgrammaticInput

from retro_gamer.adversarial.pool import (
    POOL_FILE,
    Member,
    OpponentPool,
    PoolShares,
    is_pool_file,
    pool_members,
    read_pool,
    write_pool,
)
from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.examples import chase


class Still:
    """An enemy that never moves: a game against it shows by its enemy's position."""

    def get_action(self, game):
        return None


POLICIES = {"chaser": chase.ChaserPolicy(greed=1.0), "random": chase.RandomPolicy(), "still": Still()}
MEMBERS = [Member("enemy_r0", None, 0.2), Member("enemy_r1", "random", 0.3), Member("enemy_r2", "chaser", 0.5)]


def pool(members=MEMBERS, seed: int | None = 0) -> OpponentPool:
    """A pool over ``members``; the games' random (which its draws come from) seeded with ``seed`` unless None."""
    if seed is not None:
        random.seed(seed)
    return OpponentPool(members, scripted=chase.ChaserPolicy, load=POLICIES.__getitem__)


def opponents_met(opponents: OpponentPool, games: int) -> list[str]:
    met = []
    for _ in range(games):
        game = chase.create_player_training_game(opponent=opponents)  # the pool is asked for the enemy's first move
        met.append(opponents.member_of(game).name)
    return met


def test_the_same_seed_meets_the_same_opponents_game_after_game():
    first = opponents_met(pool(seed=7), 200)
    assert opponents_met(pool(seed=7), 200) == first
    assert opponents_met(pool(seed=8), 200) != first
    assert set(first) == {"enemy_r0", "enemy_r1", "enemy_r2"}


def test_a_resumed_run_meets_the_opponents_an_unstopped_run_would():
    """The draws are the games' randomness, which resume.pt keeps and a replay recording puts back: a new pool
    (a new process) continuing from the saved random state meets what one pool would have met."""
    whole = opponents_met(pool(seed=5), 100)
    first_half = opponents_met(pool(seed=5), 50)
    saved = random.getstate()
    random.seed(99)  # what a replay recorded in between does, before it restores the state
    random.setstate(saved)
    assert first_half + opponents_met(pool(seed=None), 50) == whole


def test_draws_follow_the_shares():
    opponents = pool(seed=1)
    opponents_met(opponents, 10_000)
    assert sum(opponents.draws.values()) == 10_000
    for member in MEMBERS:
        assert opponents.draws[member.name] / 10_000 == pytest.approx(member.share, abs=0.02)


def test_a_game_keeps_its_opponent_while_other_games_take_turns():
    """Eight games stepped in turn, as a trainer steps them: the still enemy never moves, the chaser always does."""
    opponents = pool([Member("still", "still", 0.5), Member("chaser", "chaser", 0.5)], seed=3)
    games = [chase.create_player_training_game(opponent=opponents) for _ in range(8)]
    drawn = [opponents.member_of(game).name for game in games]
    assert set(drawn) == {"still", "chaser"}
    for game in games:
        game.input_source = ProgrammaticInput()
        game.start()
    tracks = [[game.get_agent_by_name("enemy").position] for game in games]
    for _ in range(5):  # the enemy starts 8 steps away: nobody is caught yet
        for game, track in zip(games, tracks):
            game.step()
            track.append(game.get_agent_by_name("enemy").position)
    for game, track, name in zip(games, tracks, drawn):
        assert opponents.member_of(game).name == name
        moves = sum(a != b for a, b in itertools.pairwise(track))
        assert moves == (0 if name == "still" else 5)
    assert sum(opponents.draws.values()) == 8  # one draw a game, however many turns


def test_a_pool_file_named_as_the_opponent_plays_in_chase(tmp_path: Path):
    path = tmp_path / POOL_FILE
    write_pool(path, [Member("enemy_r0", None, 1.0)])
    game = chase.create_player_training_game(opponent=str(path))
    assert isinstance(game.get_agent_by_name("enemy").policy, OpponentPool)


def shares_of(members: list[Member]) -> dict[str, float]:
    return {m.name: m.share for m in members}


def generations(count: int) -> list[tuple[str, str | None]]:
    return [("enemy_r0", None)] + [(f"enemy_r{n}", f"runs/enemy_r{n}") for n in range(1, count)]


def test_pool_members_split_the_games_by_the_shares():
    shares = PoolShares(latest=0.5, scripted=0.2, window=10)
    assert shares_of(pool_members(generations(1), shares)) == {"enemy_r0": 1.0}
    assert shares_of(pool_members(generations(2), shares)) == pytest.approx({"enemy_r0": 0.2, "enemy_r1": 0.8})
    assert shares_of(pool_members(generations(3), shares)) == pytest.approx(
        {"enemy_r0": 0.2, "enemy_r1": 0.3, "enemy_r2": 0.5}
    )
    fourteen = pool_members(generations(14), shares)
    names = [m.name for m in fourteen]
    assert names == ["enemy_r0", *(f"enemy_r{n}" for n in range(3, 14))]  # r1, r2 fall outside the window of 10
    assert shares_of(fourteen) == pytest.approx(
        {"enemy_r0": 0.2, "enemy_r13": 0.5, **{f"enemy_r{n}": 0.03 for n in range(3, 13)}}
    )
    assert fourteen[-1].source == "runs/enemy_r13" and fourteen[0].source is None
    for count in (1, 2, 3, 14):
        assert sum(m.share for m in pool_members(generations(count), shares)) == pytest.approx(1.0)


def test_members_without_a_share_are_left_out():
    assert [m.name for m in pool_members(generations(4), PoolShares(latest=0.8, scripted=0.2))] == [
        "enemy_r0",
        "enemy_r3",
    ]
    assert shares_of(pool_members(generations(4), PoolShares(window=0))) == pytest.approx(
        {"enemy_r0": 0.4, "enemy_r3": 0.6}
    )
    assert shares_of(pool_members(generations(3), PoolShares(scripted=0.0))) == pytest.approx(
        {"enemy_r1": 0.6, "enemy_r2": 0.4}
    )


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"latest": 1.5}, "adversarial.pool.latest"),
        ({"scripted": -0.1}, "adversarial.pool.scripted"),
        ({"latest": 0.9, "scripted": 0.2}, "adversarial.pool.latest + adversarial.pool.scripted"),
        ({"window": -1}, "adversarial.pool.window"),
        ({"window": 2.5}, "adversarial.pool.window"),
    ],
)
def test_shares_that_cannot_split_the_games_name_their_params_key(values: dict, key: str):
    with pytest.raises(ConfigError, match="params.yaml") as caught:
        PoolShares(**values)
    assert key in str(caught.value)


def test_the_pool_file_keeps_run_directories_relative_and_reads_them_back_absolute(tmp_path: Path):
    run = tmp_path / "runs" / "player_r2"
    members = [
        Member("enemy_r0", None, 0.2),
        Member("enemy_r1", str(tmp_path / "runs" / "enemy_r1"), 0.3),
        Member("enemy_r2", "models:/chase-enemy/2", 0.5),
    ]
    write_pool(run / POOL_FILE, members)
    saved = json.loads((run / POOL_FILE).read_text())
    assert saved == {
        "members": [
            {"name": "enemy_r0", "source": None, "share": 0.2},
            {"name": "enemy_r1", "source": "../enemy_r1", "share": 0.3},
            {"name": "enemy_r2", "source": "models:/chase-enemy/2", "share": 0.5},
        ]
    }
    assert read_pool(run / POOL_FILE) == members
    moved = tmp_path / "elsewhere"
    (tmp_path / "runs").rename(moved)  # the folders move together: the pool still names the same run
    assert read_pool(moved / "player_r2" / POOL_FILE)[1].source == str(moved / "enemy_r1")
    assert pool(read_pool(moved / "player_r2" / POOL_FILE)).describe() == "enemy_r0 20 %, enemy_r1 30 %, enemy_r2 50 %"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "does not exist"),
        ('{"members": [', "is not valid JSON"),
        ('{"opponents": []}', "is damaged"),
        ('{"members": [{"name": "enemy_r0", "share": 1.0}]}', "is damaged"),
        ('{"members": []}', "has no members"),
        ('{"members": [{"name": "a", "source": null, "share": 0.5}]}', "sum to 0.5, not 1"),
    ],
)
def test_a_damaged_pool_file_says_what_where_and_how_to_fix(tmp_path: Path, text: str | None, says: str):
    path = tmp_path / POOL_FILE
    if text is not None:
        path.write_text(text)
    with pytest.raises(RetroGamerError) as caught:
        OpponentPool.from_file(path, scripted=chase.ChaserPolicy, load=POLICIES.__getitem__)
    message = str(caught.value)
    assert says in message and str(path) in message and "dvc repro" in message


def test_a_member_is_loaded_once_and_only_when_drawn():
    loaded = []

    def load(source: str):
        loaded.append(source)
        return POLICIES[source]

    random.seed(0)
    opponents = OpponentPool(
        [Member("enemy_r0", None, 0.5), Member("enemy_r1", "random", 0.5)], scripted=chase.ChaserPolicy, load=load
    )
    assert loaded == []
    for _ in range(50):
        chase.create_player_training_game(opponent=opponents)
    assert loaded == ["random"]


def test_pool_files_are_told_from_runs():
    assert is_pool_file("runs/player_r2/opponents.json") and is_pool_file(Path("pool.json"))
    assert not is_pool_file("runs/enemy_r1") and not is_pool_file("models:/chase-enemy/1") and not is_pool_file(None)
    assert not is_pool_file(chase.ChaserPolicy())
