"""Player generations against enemy generations: match results, a round-robin matrix and Elo ratings.

A *match* is ``episodes`` greedy games of a two-sided match game (default: chase's
:func:`~retro_gamer.examples.chase.create_match_game`) between one player and one enemy. Each side
is a policy source (a run directory, an MLflow model URI such as ``models:/chase-enemy@champion``),
a loaded policy (anything with ``get_action(game)``, e.g. :class:`~retro_gamer.TrainedPolicy`), or
``None`` for the game's round-0 scripted side.

The match game protocol, for a game other than chase: ``factory(player=SOURCE, enemy=SOURCE)``
returns a ``retro.game.Game`` whose AI sides act on their own (no keyboard), and whose
``game.state`` holds ``caught`` (non-zero once the enemy has won) and ``coins`` (the player's
score). A ``turn_limit=`` parameter, when the factory has one, receives ``max_turns``.

An episode is a game between the two sides: the **player wins** when it is not caught within
``max_turns`` turns (it survived to the limit), the **enemy wins** when it catches the player.

Ratings (:func:`fit_ratings`): one Bradley–Terry model for both sides on one scale,
``P(player i beats enemy j) = 1 / (1 + exp(θ_j − θ_i))``, fitted by maximum likelihood on every
episode of every match, plus one virtual drawn game per pairing (half a win to each side) so that
a side that wins every episode still gets a finite rating. The log-likelihood is concave; Newton's
method from zero converges to its unique maximum with the θ summing to zero, so the fit is
deterministic (no sampling, no order dependence, unlike sequential Elo updates). Ratings are
``1000 + 400·log10(e)·θ``: Elo's scale (a 400-point gap means 10:1 odds) with mean 1000 over
all generations of both sides. Only player-versus-enemy differences are measured; two players are
compared through the enemies both met.

    python -m retro_gamer.tournament --player r0=baseline --player r1=runs/player_r1 \\
        --enemy r0=baseline --enemy r1=runs/enemy_r1 --episodes 20 \\
        --json metrics/tournament.json --ratings metrics/ratings.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MATCH_FACTORY = "retro_gamer.examples.chase:create_match_game"
BASELINE_NAMES = ("", "none", "baseline", "scripted")
ELO_SCALE = 400 / math.log(10)
ELO_MEAN = 1000.0
PRIOR_GAMES = 1.0  # virtual drawn games per pairing


@dataclass
class MatchResult:
    """``episodes`` games between one player and one enemy."""

    player: str
    enemy: str
    episodes: int
    catches: int
    catch_rate: float
    player_win_rate: float  # survived to the turn limit
    mean_coins: float
    mean_length: float
    lengths: list[int] = field(default_factory=list, repr=False)
    coins: list[float] = field(default_factory=list, repr=False)

    @property
    def player_wins(self) -> int:
        return self.episodes - self.catches

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly figures (no per-episode lists)."""
        out = asdict(self)
        del out["lengths"], out["coins"]
        return out


def _label(source: Any) -> str:
    if source is None:
        return "baseline"
    return str(getattr(source, "source", source))


def _factory(factory: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(factory):
        return factory
    from retro_gamer.games import load_factory

    return load_factory(factory)


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def play_match(player: Any, enemy: Any, episodes: int = 20, seed: int = 0, max_turns: int = 200,
               factory: str | Callable[..., Any] = MATCH_FACTORY) -> MatchResult:
    """Play ``episodes`` greedy games of ``factory(player=player, enemy=enemy)``.

    Python's global ``random`` (starts, coins, scripted sides) is seeded with ``seed`` for the
    match and put back as it was afterwards, so a caller's random sequence is not disturbed and
    the same call gives the same result.
    """
    from retro.input import ProgrammaticInput

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    make = _factory(factory)
    extra = {"turn_limit": max_turns} if _accepts(make, "turn_limit") else {}
    saved = random.getstate()
    random.seed(seed)
    lengths, coins, catches = [], [], 0
    try:
        for _ in range(episodes):
            game = make(player=player, enemy=enemy, **extra)
            game.input_source, game.view = ProgrammaticInput(), None
            game.start()
            turns = 0
            while game.playing and turns < max_turns:
                game.step()
                turns += 1
            catches += bool(game.state.get("caught", 0))
            lengths.append(turns)
            coins.append(float(game.state.get("coins", 0)))
    finally:
        random.setstate(saved)
    return MatchResult(
        player=_label(player), enemy=_label(enemy), episodes=episodes, catches=catches,
        catch_rate=catches / episodes, player_win_rate=1 - catches / episodes,
        mean_coins=float(np.mean(coins)), mean_length=float(np.mean(lengths)), lengths=lengths, coins=coins,
    )


def fit_ratings(wins: np.ndarray, games: np.ndarray, prior_games: float = PRIOR_GAMES,
                iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Bradley–Terry ratings (Elo scale) from ``wins[i, j]`` player wins in ``games[i, j]`` games of
    player ``i`` against enemy ``j``. Returns (player ratings, enemy ratings); see the module docstring."""
    wins = np.asarray(wins, dtype=float) + prior_games / 2
    games = np.asarray(games, dtype=float) + prior_games
    n_players, n_enemies = games.shape
    theta = np.zeros(n_players + n_enemies)
    for _ in range(iterations):
        diff = theta[:n_players, None] - theta[None, n_players:]
        p = 1 / (1 + np.exp(-diff))
        residual = wins - games * p  # d loglik / d diff
        gradient = np.concatenate([residual.sum(1), -residual.sum(0)])
        weight = games * p * (1 - p)
        hessian = np.zeros((len(theta), len(theta)))
        hessian[:n_players, :n_players] = np.diag(weight.sum(1))
        hessian[n_players:, n_players:] = np.diag(weight.sum(0))
        hessian[:n_players, n_players:] = -weight
        hessian[n_players:, :n_players] = -weight.T
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]  # minimum norm: keeps sum(θ) = 0
        theta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    theta -= theta.mean()
    ratings = ELO_MEAN + ELO_SCALE * theta
    return ratings[:n_players], ratings[n_players:]


def _round_of(name: Any, index: int) -> int:
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    digits = re.findall(r"\d+", str(name))
    return int(digits[-1]) if digits else index


@dataclass
class Tournament:
    """Every player generation against every enemy generation, and the ratings that explain it."""

    players: list[str]
    enemies: list[str]
    matches: dict[tuple[str, str], MatchResult]
    player_ratings: dict[str, float]
    enemy_ratings: dict[str, float]
    episodes: int
    seed: int
    max_turns: int
    factory: str
    rounds: dict[str, dict[str, int]] = field(default_factory=dict)

    def matrix(self, metric: str) -> list[list[float]]:
        """``metric`` (a :class:`MatchResult` field) by player generation (rows) and enemy generation (columns)."""
        return [[float(getattr(self.matches[p, e], metric)) for e in self.enemies] for p in self.players]

    def to_dict(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "episodes": self.episodes,
            "seed": self.seed,
            "max_turns": self.max_turns,
            "player_win": "not caught within max_turns",
            "players": self.players,
            "enemies": self.enemies,
            "matrix": {m: self.matrix(m) for m in ("player_win_rate", "catch_rate", "mean_coins", "mean_length")},
            "matches": [self.matches[p, e].summary() | {"player": p, "enemy": e}
                        for p in self.players for e in self.enemies],
            "ratings": {"player": self.player_ratings, "enemy": self.enemy_ratings},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The matrix and ratings as JSON text (``metrics/tournament.json``); written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    def rating_rows(self) -> list[dict[str, Any]]:
        """One row per generation for a DVC plot: ``{"round": 0, "side": "player", "generation": "r0", "rating": 1000.0}``.

        ``round`` is the generation's name when it is a number, else the last number in its name, else its position."""
        rows = []
        for side, ratings in (("player", self.player_ratings), ("enemy", self.enemy_ratings)):
            for name, rating in ratings.items():
                rows.append({"round": self.rounds[side][name], "side": side, "generation": name,
                             "rating": round(rating, 2)})
        return rows


def round_robin(players: Mapping[Any, Any], enemies: Mapping[Any, Any], episodes: int = 20, seed: int = 0,
                max_turns: int = 200, factory: str | Callable[..., Any] = MATCH_FACTORY) -> Tournament:
    """Every player generation against every enemy generation (``{name: source or None}`` each).

    Every match uses the same ``seed`` (common random numbers: the same starts and coin draws
    for every pairing, so differences come from the policies). A source given as a run directory
    or model URI is loaded once per process by the match game (chase caches it per source).
    """
    if not players or not enemies:
        raise ValueError("a round robin needs at least one player and one enemy generation")
    names_p, names_e = [str(k) for k in players], [str(k) for k in enemies]
    for side, names in (("player", names_p), ("enemy", names_e)):
        if len(set(names)) != len(names):
            raise ValueError(f"two {side} generations have the same name: {names}")
    make = _factory(factory)
    matches = {}
    wins = np.zeros((len(players), len(enemies)))
    games = np.zeros_like(wins)
    for i, (p, player) in enumerate(zip(names_p, players.values())):
        for j, (e, enemy) in enumerate(zip(names_e, enemies.values())):
            result = play_match(player, enemy, episodes, seed, max_turns, make)
            result.player, result.enemy = p, e
            matches[p, e] = result
            wins[i, j], games[i, j] = result.player_wins, result.episodes
    player_ratings, enemy_ratings = fit_ratings(wins, games)
    rounds = {"player": {n: _round_of(k, i) for i, (n, k) in enumerate(zip(names_p, players))},
              "enemy": {n: _round_of(k, i) for i, (n, k) in enumerate(zip(names_e, enemies))}}
    return Tournament(
        players=names_p, enemies=names_e, matches=matches,
        player_ratings={n: float(r) for n, r in zip(names_p, player_ratings)},
        enemy_ratings={n: float(r) for n, r in zip(names_e, enemy_ratings)},
        episodes=episodes, seed=seed, max_turns=max_turns,
        factory=factory if isinstance(factory, str) else f"{factory.__module__}:{factory.__qualname__}",
        rounds=rounds,
    )


def _generation(text: str) -> tuple[str, str | None]:
    name, sep, source = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SOURCE (e.g. r1=runs/player_r1 or r0=baseline), got {text!r}")
    return name, None if source.strip().lower() in BASELINE_NAMES else source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retro_gamer.tournament",
        description="Round robin: every player generation against every enemy generation, with Elo ratings.",
        epilog="Example: python -m retro_gamer.tournament --player r0=baseline --player r1=runs/player_r1 "
               "--enemy r0=baseline --enemy r1=models:/chase-enemy@champion --json metrics/tournament.json",
    )
    parser.add_argument("--player", action="append", type=_generation, required=True, metavar="NAME=SOURCE",
                        help="a player generation: a run directory, a model URI, or 'baseline' (repeat)")
    parser.add_argument("--enemy", action="append", type=_generation, required=True, metavar="NAME=SOURCE",
                        help="an enemy generation (repeat)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-turns", type=int, default=200)
    parser.add_argument("--factory", default=MATCH_FACTORY, help=f"the match game (default {MATCH_FACTORY})")
    parser.add_argument("--json", type=Path, help="write the matrix and ratings here")
    parser.add_argument("--ratings", type=Path, help="write the rating rows here (.csv or .json), for a plot")
    args = parser.parse_args(argv)
    from retro_gamer.errors import RetroGamerError

    try:
        result = round_robin(dict(args.player), dict(args.enemy), args.episodes, args.seed, args.max_turns, args.factory)
    except RetroGamerError as err:
        print(err, file=sys.stderr)
        return 2
    text = result.to_json(args.json)
    if args.ratings is not None:
        rows = result.rating_rows()
        args.ratings.parent.mkdir(parents=True, exist_ok=True)
        if args.ratings.suffix == ".csv":
            lines = ["round,side,generation,rating"] + [f"{r['round']},{r['side']},{r['generation']},{r['rating']}" for r in rows]
            args.ratings.write_text("\n".join(lines) + "\n")
        else:
            args.ratings.write_text(json.dumps(rows, indent=2) + "\n")
    if args.json is None:
        print(text, end="")
    else:
        for p in result.players:
            print(f"player {p:>10} {result.player_ratings[p]:7.1f}  " + "  ".join(
                f"vs {e}: {result.matches[p, e].player_win_rate:.0%} survive, {result.matches[p, e].mean_coins:.1f} coins"
                for e in result.enemies))
        for e in result.enemies:
            print(f"enemy  {e:>10} {result.enemy_ratings[e]:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
