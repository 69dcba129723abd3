"""Round-robin tournaments on real chase games: output shape, Elo ordering, determinism, random state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from retro_gamer.examples.chase import ChaserPolicy, RandomPolicy
from retro_gamer.tournament import MATCH_FACTORY, fit_ratings, main, play_match, round_robin

SHORT = {"episodes": 6, "max_turns": 60}


def test_a_match_reports_rates_coins_and_lengths():
    result = play_match(None, RandomPolicy(), seed=4, **SHORT)
    assert result.episodes == 6 and len(result.lengths) == 6 and len(result.coins) == 6
    assert result.catch_rate + result.player_win_rate == pytest.approx(1)
    assert result.catches == round(result.catch_rate * 6)
    assert all(1 <= n <= 60 for n in result.lengths) and result.mean_length == pytest.approx(np.mean(result.lengths))
    assert result.mean_coins == pytest.approx(np.mean(result.coins)) and result.player == "baseline"


def test_the_callers_random_state_is_restored():
    random.seed(123)
    before = random.getstate()
    play_match(None, None, seed=9, **SHORT)
    assert random.getstate() == before
    expected = random.random()
    random.setstate(before)
    play_match(RandomPolicy(), RandomPolicy(), seed=10, **SHORT)
    assert random.random() == expected


def test_the_tournament_has_a_matrix_ratings_and_plot_rows(tmp_path: Path):
    t = round_robin({"r0": None, "r1": RandomPolicy()}, {"r0": None, "r1": RandomPolicy(), "r2": ChaserPolicy(1.0)},
                    seed=1, factory=MATCH_FACTORY, **SHORT)
    data = json.loads(t.to_json(tmp_path / "metrics" / "tournament.json"))
    assert json.loads((tmp_path / "metrics" / "tournament.json").read_text()) == data
    assert data["players"] == ["r0", "r1"] and data["enemies"] == ["r0", "r1", "r2"]
    for metric in ("player_win_rate", "catch_rate", "mean_coins", "mean_length"):
        assert np.shape(data["matrix"][metric]) == (2, 3)
    assert len(data["matches"]) == 6 and data["episodes"] == 6 and data["max_turns"] == 60
    assert set(data["ratings"]) == {"player", "enemy"}
    ratings = [*data["ratings"]["player"].values(), *data["ratings"]["enemy"].values()]
    assert np.mean(ratings) == pytest.approx(1000)
    rows = t.rating_rows()
    assert [(r["round"], r["side"]) for r in rows] == [(0, "player"), (1, "player"), (0, "enemy"), (1, "enemy"), (2, "enemy")]
    assert all(isinstance(r["rating"], float) for r in rows)


def test_a_better_side_gets_the_higher_rating_and_the_fit_is_deterministic():
    players, enemies = {0: None, 1: RandomPolicy()}, {"random": RandomPolicy(), "chaser": None}
    t = round_robin(players, enemies, episodes=10, seed=2, max_turns=100)
    assert t.matches["1", "chaser"].catch_rate > t.matches["1", "random"].catch_rate
    assert t.enemy_ratings["chaser"] > t.enemy_ratings["random"] + 200
    again = round_robin(players, enemies, episodes=10, seed=2, max_turns=100)
    assert again.to_json() == t.to_json()
    assert round_robin(players, enemies, episodes=10, seed=3, max_turns=100).to_json() != t.to_json()


def test_ratings_are_on_elos_scale():
    players, enemies = fit_ratings(np.array([[50.0]]), np.array([[100.0]]))
    assert players[0] == pytest.approx(1000) and enemies[0] == pytest.approx(1000)
    # 10:1 odds (after the half win and half loss of the virtual drawn game) is a 400-point gap
    players, enemies = fit_ratings(np.array([[909.5]]), np.array([[1000.0]]))
    assert players[0] - enemies[0] == pytest.approx(400, abs=0.5)
    # a side that wins every game still gets a finite rating; a stronger player beats the weaker's record
    players, enemies = fit_ratings(np.array([[10.0, 10.0], [2.0, 0.0]]), np.full((2, 2), 10.0))
    assert np.all(np.isfinite(players)) and players[0] > players[1] and enemies[1] > enemies[0]


def test_the_command_line_writes_the_json_and_the_rating_rows(tmp_path: Path, capsys):
    code = main(["--player", "r0=baseline", "--enemy", "r0=baseline", "--enemy", "r1=none", "--episodes", "2",
                 "--max-turns", "30", "--json", str(tmp_path / "t.json"), "--ratings", str(tmp_path / "r.csv")])
    assert code == 0
    assert json.loads((tmp_path / "t.json").read_text())["enemies"] == ["r0", "r1"]
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "round,side,generation,rating"
    assert "player" in capsys.readouterr().out
