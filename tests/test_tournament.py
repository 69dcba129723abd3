"""Tournaments on real chase games (outcome-judged results, common random numbers, processes, intervals,
the command line) and the verdicts on constructed payoff matrices."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, run_module

from retro_gamer.adversarial.heatmap import write_heatmap
from retro_gamer.adversarial.intervals import clopper_pearson
from retro_gamer.adversarial.matches import MatchResult, play_match
from retro_gamer.adversarial.ratings import bootstrap_intervals, fit_points, fit_ratings
from retro_gamer.adversarial.tournament import main, round_robin
from retro_gamer.adversarial.verdicts import Payoff, exploitability, gate, generation_rows
from retro_gamer.examples.chase import COINS_TO_WIN, ChaserPolicy, RandomPolicy, create_match_game, outcome

SHORT = {"episodes": 6, "max_turns": 60}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def enemy_run(tmp_path_factory) -> Path:
    """A tiny but real enemy run of chase (two episodes): a source given as text, loaded in each process."""
    from retro_gamer.config.compose import compose_run
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    run = tmp_path_factory.mktemp("chase") / "enemy"
    cfg, source, _ = compose_run(
        "retro_gamer.examples.chase:create_enemy_training_game",
        [*TINY, "trainer.episodes=2", "trainer.checkpoint_every=2"],
    )
    train_run(run, prepare_run(cfg, run, source), progress=False)
    return run


def player_always_wins(game) -> dict[str, str]:
    return {"player": "win", "enemy": "loss"}


def both_win(game) -> dict[str, str]:
    return {"player": "win", "enemy": "win"}


def another_match_game(player=None, enemy=None, turn_limit=200):
    return create_match_game(player, enemy, turn_limit)


# -- matches on real games ---------------------------------------------------------------------------


def test_the_outcome_function_decides_every_episode():
    match = play_match(None, RandomPolicy(), episodes=12, seed=4, max_turns=60)
    assert match.episodes == 12 and match.player == "scripted"
    for result, coins, turns in zip(match.results, match.coins, match.lengths):
        if result == "win":
            assert coins >= COINS_TO_WIN
        else:  # caught, or out of time (the game's turn limit is max_turns): chase has no draw at the limit
            assert result == "loss" and coins < COINS_TO_WIN and turns <= 60
    assert match.score == pytest.approx((match.wins + match.draws / 2) / 12)
    assert match.win_rate + match.draw_rate + match.loss_rate == pytest.approx(1)
    assert match.mean_coins == pytest.approx(np.mean(match.coins)) and match.mean_length == pytest.approx(
        np.mean(match.lengths)
    )
    by_name = play_match(
        None, RandomPolicy(), episodes=12, seed=4, max_turns=60, outcome="retro_gamer.examples.chase:outcome"
    )
    assert by_name.results == match.results
    ruled = play_match(None, RandomPolicy(), episodes=12, seed=4, max_turns=60, outcome=player_always_wins)
    assert ruled.score == 1 and ruled.coins == match.coins  # the same games, another judge


def test_another_game_must_name_its_outcome_and_a_result_must_be_zero_sum():
    with pytest.raises(ValueError, match="name its outcome"):
        round_robin({"r0": None}, {"r0": None}, factory=another_match_game, workers=1, **SHORT)
    named = round_robin({"r0": None}, {"r0": None}, factory=another_match_game, outcome=outcome, workers=1, **SHORT)
    assert named.outcome == "retro_gamer.examples.chase:outcome"
    with pytest.raises(ValueError, match="the opposite"):
        play_match(None, None, outcome=both_win, **SHORT)


def test_a_draw_counts_half_and_every_rate_has_an_interval_around_it():
    match = MatchResult("p", "e", ["win", "draw", "loss", "draw"], [5.0, 2.0, 1.0, 0.0], [30, 200, 12, 200])
    assert (match.wins, match.draws, match.losses, match.score) == (1, 2, 1, 0.5)
    summary = match.summary()
    for rate in ("win_rate", "draw_rate", "loss_rate", "score"):
        low, high = summary[f"{rate}_interval"]
        assert low <= summary[rate] <= high
    assert summary["mean_coins"] == 2.0 and "results" not in summary


def test_the_callers_random_state_is_restored():
    random.seed(123)
    before = random.getstate()
    play_match(None, None, seed=9, **SHORT)
    assert random.getstate() == before
    expected = random.random()
    random.setstate(before)
    play_match(RandomPolicy(), RandomPolicy(), seed=10, **SHORT)
    assert random.random() == expected


def test_common_random_numbers_every_pairing_plays_the_same_episodes():
    t = round_robin({"a": None, "b": None}, {"x": None, "y": RandomPolicy()}, episodes=8, max_turns=60, workers=1)
    for enemy in ("x", "y"):
        first, second = t.matches["a", enemy], t.matches["b", enemy]
        assert (first.results, first.coins, first.lengths) == (second.results, second.coins, second.lengths)
    assert t.matches["a", "x"].results != t.matches["a", "y"].results  # only the policies differ
    whole = play_match(None, None, episodes=8, max_turns=60)
    part = play_match(None, None, episodes=3, max_turns=60, first_episode=4)  # each episode has its own seed
    assert part.results == whole.results[4:7] and part.coins == whole.coins[4:7]
    other = round_robin({"a": None}, {"x": None}, episodes=8, max_turns=60, seed=1, workers=1)
    assert other.matches["a", "x"].lengths != t.matches["a", "x"].lengths


def test_one_or_two_processes_give_the_same_tournament(enemy_run: Path):
    players, enemies = {"r0": None, "r1": RandomPolicy()}, {"r0": None, "r1": str(enemy_run)}
    alone = round_robin(players, enemies, episodes=5, max_turns=40, workers=1)
    shared = round_robin(players, enemies, episodes=5, max_turns=40, workers=2)
    assert shared.to_json() == alone.to_json()

    class Local:  # a class inside a function cannot be sent to another process
        def get_action(self, game):
            return None

    with pytest.raises(ValueError, match="workers=1"):
        round_robin({"r0": Local()}, {"r0": None}, workers=2, **SHORT)
    assert round_robin({"r0": Local()}, {"r0": None}, workers=1, **SHORT).matches["r0", "r0"].episodes == 6


def test_the_tournament_carries_matrices_intervals_ratings_and_verdicts(tmp_path: Path):
    t = round_robin(
        {"r0": None, "r1": RandomPolicy()},
        {"r0": None, "r1": RandomPolicy(), "r2": ChaserPolicy(1.0)},
        seed=1,
        workers=1,
        **SHORT,
    )
    data = json.loads(t.to_json(tmp_path / "metrics" / "tournament.json"))
    assert json.loads((tmp_path / "metrics" / "tournament.json").read_text()) == data
    assert data["players"] == ["r0", "r1"] and data["enemies"] == ["r0", "r1", "r2"]
    assert (
        data["outcome"] == "retro_gamer.examples.chase:outcome" and data["episodes"] == 6 and data["confidence"] == 0.9
    )
    for metric in ("score", "win_rate", "draw_rate", "loss_rate", "mean_coins", "mean_length"):
        assert np.shape(data["matrix"][metric]) == (2, 3)
    for rate in ("score", "win_rate", "draw_rate", "loss_rate"):
        bounds, values = np.array(data["interval"][rate]), np.array(data["matrix"][rate])
        assert bounds.shape == (2, 3, 2) and np.all(bounds[..., 0] <= values) and np.all(values <= bounds[..., 1])
    assert len(data["matches"]) == 6 and data["matches"][0]["score_interval"] == data["interval"]["score"][0][0]
    ratings = [*data["ratings"]["player"].values(), *data["ratings"]["enemy"].values()]
    assert np.mean(ratings) == pytest.approx(1000)
    for side in ("player", "enemy"):
        assert set(data["rating_intervals"][side]) == set(data["ratings"][side])
    verdicts = data["verdicts"]
    assert verdicts["gate"]["player"]["final"] == "r1" and verdicts["gate"]["enemy"]["final"] == "r2"
    assert verdicts["gate"]["player"]["enough_episodes"] is False  # 6 games a pair decide nothing
    assert verdicts["exploitability"]["enemy"]["generation"] == "r2"
    assert [row["generation"] for row in verdicts["generations"]["enemy"]] == ["r0", "r1", "r2"]
    assert verdicts["generations"]["player"][1]["score_vs_scripted"] == data["matrix"]["score"][1][0]
    rows = t.rating_rows()
    assert [(r["round"], r["side"]) for r in rows] == [
        (0, "player"),
        (1, "player"),
        (0, "enemy"),
        (1, "enemy"),
        (2, "enemy"),
    ]
    assert all(r["low"] <= r["high"] for r in rows)


def test_a_better_side_gets_the_higher_rating_and_the_result_is_deterministic():
    players, enemies = {0: None, 1: RandomPolicy()}, {"random": RandomPolicy(), "chaser": None}
    t = round_robin(players, enemies, episodes=10, seed=2, max_turns=100, workers=1)
    assert t.matches["0", "chaser"].score < t.matches["0", "random"].score  # the scripted player fares worse
    assert t.enemy_ratings["chaser"] > t.enemy_ratings["random"] + 100
    again = round_robin(players, enemies, episodes=10, seed=2, max_turns=100, workers=1)
    assert again.to_json() == t.to_json()


def test_a_score_interval_shrinks_with_more_games():
    few, many = (play_match(None, RandomPolicy(), episodes=n, max_turns=40) for n in (10, 40))
    (a, b), (c, d) = few.interval("score"), many.interval("score")
    assert a <= few.score <= b and c <= many.score <= d and d - c < b - a


# -- intervals and ratings -----------------------------------------------------------------------------


def test_clopper_pearson_is_exact_at_the_ends_and_shrinks_with_more_games():
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.05 ** (1 / 10)))  # P(0 of 10) = 5 % at the bound
    assert clopper_pearson(10, 10) == (pytest.approx(0.05 ** (1 / 10)), 1.0)
    for successes, trials in ((3, 10), (4.5, 10), (0.5, 1), (100, 200)):
        low, high = clopper_pearson(successes, trials)
        assert 0 <= low < successes / trials < high <= 1
    widths = [np.subtract(*clopper_pearson(n / 2, n)[::-1]) for n in (20, 80, 320)]
    assert widths[0] > widths[1] > widths[2]
    with pytest.raises(ValueError):
        clopper_pearson(11, 10)


def test_ratings_are_on_elos_scale():
    players, enemies = fit_ratings(np.array([[50.0]]), np.array([[100.0]]))
    assert players[0] == pytest.approx(1000) and enemies[0] == pytest.approx(1000)
    # 10:1 odds (after the half win and half loss of the virtual drawn game) is a 400-point gap
    players, enemies = fit_ratings(np.array([[909.5]]), np.array([[1000.0]]))
    assert players[0] - enemies[0] == pytest.approx(400, abs=0.5)
    # a side that wins every game still gets a finite rating; a stronger player beats the weaker's record
    players, enemies = fit_ratings(np.array([[10.0, 10.0], [2.0, 0.0]]), np.full((2, 2), 10.0))
    assert np.all(np.isfinite(players)) and players[0] > players[1] and enemies[1] > enemies[0]
    # two draws are worth one win and one loss
    assert np.allclose(fit_points(np.full((1, 1, 2), 0.5)), fit_points(np.array([[[1.0, 0.0]]])))


def test_the_rating_bootstrap_is_deterministic_and_narrows_with_more_games():
    rng = np.random.default_rng(7)
    points = rng.choice([0.0, 0.5, 1.0], size=(2, 3, 60), p=[0.4, 0.2, 0.4])
    points[1] = rng.choice([0.0, 0.5, 1.0], size=(3, 60), p=[0.2, 0.2, 0.6])  # a stronger second player
    players, enemies = bootstrap_intervals(points, seed=3)
    again = bootstrap_intervals(points, seed=3)
    assert np.array_equal(players, again[0]) and np.array_equal(enemies, again[1])
    assert not np.array_equal(players, bootstrap_intervals(points, seed=4)[0])
    fitted = np.concatenate(fit_points(points))
    bounds = np.concatenate([players, enemies])
    assert bounds.shape == (5, 2) and np.all(bounds[:, 0] <= fitted) and np.all(fitted <= bounds[:, 1])
    wider = np.concatenate(bootstrap_intervals(np.tile(points, 4), seed=3))
    assert np.all(np.diff(wider, axis=1) < np.diff(bounds, axis=1))


# -- verdicts on constructed payoff matrices -------------------------------------------------------


def payoff(score, episodes=200, **extra) -> Payoff:
    score = np.array(score, dtype=float)
    return Payoff(
        [f"r{i}" for i in range(score.shape[0])], [f"r{j}" for j in range(score.shape[1])], score, episodes, **extra
    )


def test_the_gate_compares_the_final_generation_with_each_earlier_one_within_the_tolerance():
    # players' mean scores over all enemies: r0 0.75, r1 0.60, r2 0.70 (r2 is 0.05 below r0: the edge)
    matrix = payoff([[0.75, 0.75], [0.6, 0.6], [0.7, 0.7]])
    verdict = gate(matrix, "player")
    assert verdict["final"] == "r2" and verdict["final_mean"] == pytest.approx(0.7)
    assert [row["generation"] for row in verdict["earlier"]] == ["r0", "r1"]
    assert verdict["earlier"][0]["margin"] == pytest.approx(-0.05) and verdict["earlier"][0]["passed"]
    assert verdict["earlier"][1]["margin"] == pytest.approx(0.1) and verdict["passed"]
    assert verdict["enough_episodes"] and verdict["tolerance"] == 0.05
    assert not gate(matrix, "player", tolerance=0.0)["passed"]
    assert not gate(payoff([[0.75, 0.75], [0.6, 0.6], [0.69, 0.69]]), "player")["passed"]  # 0.06 below
    assert not gate(payoff([[0.75]], episodes=199), "player")["enough_episodes"]
    single = gate(payoff([[0.5, 0.5]]), "player")
    assert single["earlier"] == [] and single["passed"]


def test_the_enemy_gate_and_rows_read_one_minus_the_players_score():
    # enemies' mean scores: r0 1 - 0.5 = 0.5, r1 1 - 0.3 = 0.7, r2 1 - 0.4 = 0.6
    matrix = payoff([[0.5, 0.2, 0.3], [0.5, 0.4, 0.5]], coins=[[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    verdict = gate(matrix, "enemy")
    assert verdict["final"] == "r2" and verdict["final_mean"] == pytest.approx(0.6)
    assert [row["passed"] for row in verdict["earlier"]] == [True, False] and not verdict["passed"]
    ratings = dict.fromkeys(("r0", "r1", "r2"), 1000.0)
    rows = generation_rows(matrix, "enemy", ratings, dict.fromkeys(ratings, (900.0, 1100.0)))
    assert [row["score_vs_scripted"] for row in rows] == pytest.approx([0.5, 0.8, 0.7])
    assert [row["mean_coins"] for row in rows] == pytest.approx([2.0, 3.0, 4.0])  # conceded
    assert (
        generation_rows(matrix, "enemy", ratings, dict.fromkeys(ratings, (0, 0)), "baseline")[0]["score_vs_scripted"]
        is None
    )


def test_exploitability_is_the_final_generations_worst_case_and_against_whom():
    low, high = np.full((2, 3), 0.0), np.full((2, 3), 1.0)
    matrix = payoff([[0.9, 0.9, 0.9], [0.7, 0.3, 0.5]], low=low, high=high)
    assert exploitability(matrix, "player") == {
        "generation": "r1",
        "worst_score": pytest.approx(0.3),
        "interval": [0.0, 1.0],
        "against": "r1",
    }
    worst = exploitability(matrix, "enemy")  # enemy r2 scores 0.1 against player r0
    assert (worst["generation"], worst["against"], worst["worst_score"]) == ("r2", "r0", pytest.approx(0.1))


def test_the_heat_map_is_a_png_of_the_matrix(tmp_path: Path):
    matrix = payoff([[0.1, 0.5, 0.9], [0.3, 0.6, 1.0]], low=np.zeros((2, 3)), high=np.ones((2, 3)))
    path = write_heatmap(matrix, tmp_path / "plots" / "payoff.png", "chase: the player's score")
    data = path.read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200 and len(data) > 5_000
    assert [p.name for p in path.parent.iterdir()] == ["payoff.png"]  # no temp file left beside it


# -- the command line --------------------------------------------------------------------------------


def test_the_command_line_prints_a_table_and_writes_its_files(tmp_path: Path, capsys):
    code = main(
        [
            "--player",
            "r0=scripted",
            "--enemy",
            "r0=scripted",
            "--enemy",
            "r1=none",
            "--episodes",
            "4",
            "--max-turns",
            "30",
            "--workers",
            "1",
            "--json",
            str(tmp_path / "t.json"),
            "--ratings",
            str(tmp_path / "r.csv"),
            "--heatmap",
            str(tmp_path / "h.png"),
        ]
    )
    assert code == 0
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["enemies"] == ["r0", "r1"] and data["verdicts"]["gate"]["enemy"]["final"] == "r1"
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "round,side,generation,rating,low,high" and len(lines) == 4
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    out = capsys.readouterr().out
    assert "gate (tolerance 0.05): player r0 PASS" in out and "exploitability: enemy r1" in out
    with pytest.raises(SystemExit):
        main(["--player", "r0=scripted", "--enemy", "r0=scripted", "--heatmap", str(tmp_path / "h.txt")])


def test_python_m_retro_gamer_tournament_runs_on_two_processes(tmp_path: Path):
    done = run_module(
        [
            "-m",
            "retro_gamer.adversarial.tournament",
            "--player",
            "r0=scripted",
            "--enemy",
            "r0=scripted",
            "--episodes",
            "4",
            "--max-turns",
            "20",
            "--ratings",
            str(tmp_path / "r.json"),
        ],
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "player \\ enemy" in done.stdout
    assert [row["side"] for row in json.loads((tmp_path / "r.json").read_text())] == ["player", "enemy"]
