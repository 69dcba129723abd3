"""Player generations against enemy generations: a round robin judged by the game's own outcome, with
intervals, ratings, verdicts and a heat map.

Every player generation plays every enemy generation ``episodes`` greedy games (default 200, the fewest a
gate decides on) of a match game (default chase's; the protocol is in :mod:`retro_gamer.adversarial.matches`).
Each side is a policy source: a run directory, an MLflow model URI such as ``models:/chase-enemy@champion``,
an object with ``get_action(game)``, or ``None`` for the game's scripted round-0 side.

* **Results** come only from the game's outcome function (chase: 5 coins win for the player, a catch for the
  enemy, anything else a draw). The player's score is ``(wins + draws/2) / episodes``, the enemy's ``1 − score``.
* **Common random numbers**: episode k of every pairing starts from the same seed, so pairings differ only
  by their policies.
* **Both cores**: the pairings' episodes are split over ``workers`` processes ("spawn": a source given as
  text is loaded in each process, once). Each episode has its own seed, so the result is the same whatever
  ``workers`` is.
* **Intervals** (90 %): Clopper–Pearson on every rate and score (:mod:`~retro_gamer.adversarial.intervals`);
  a seeded bootstrap over the episode seeds on every rating (:mod:`~retro_gamer.adversarial.ratings`).
* **Ratings**: Bradley–Terry for both sides on one Elo-style scale (400 points = 10:1 odds, mean 1000).
* **Verdicts** (:mod:`~retro_gamer.adversarial.verdicts`): per generation its rating, its score against the
  other side's scripted generation and its coins; each final generation's worst case (exploitability); and
  the gate, whether each final generation does at least as well as every earlier one of its side.

    python -m retro_gamer.adversarial.tournament --player r0=scripted --player r1=runs/player_r1 \\
        --enemy r0=scripted --enemy r1=runs/enemy_r1 --json metrics/tournament.json \\
        --ratings metrics/ratings.csv --heatmap metrics/payoff.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retro_gamer.adversarial.heatmap import write_heatmap
from retro_gamer.adversarial.intervals import CONFIDENCE
from retro_gamer.adversarial.matches import (
    MATCH_FACTORY,
    RATES,
    MatchResult,
    play_chunk,
    resolve_factory,
    resolve_outcome,
    spec_of,
)
from retro_gamer.adversarial.ratings import RESAMPLES, bootstrap_intervals, fit_points
from retro_gamer.adversarial.verdicts import GATE_EPISODES, GATE_TOLERANCE, SCRIPTED, SIDES, Payoff, verdicts
from retro_gamer.files import atomic_write_bytes

DEFAULT_EPISODES = GATE_EPISODES
WORKERS = 2
TASKS_PER_WORKER = 4  # enough chunks that one slow pairing does not leave a process idle at the end
SCRIPTED_NAMES = ("", "none", "baseline", "scripted")
METRICS = (*RATES, "mean_coins", "mean_length")


def _round_of(name: Any, index: int) -> int:
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    digits = re.findall(r"\d+", str(name))
    return int(digits[-1]) if digits else index


@dataclass
class Tournament:
    """Every player generation against every enemy generation, the ratings that explain it, and the verdicts.

    Generations are in the order given, oldest first: the last of each side is its *final* generation."""

    players: list[str]
    enemies: list[str]
    matches: dict[tuple[str, str], MatchResult]
    ratings: dict[str, dict[str, float]]  # side → generation → rating
    rating_intervals: dict[str, dict[str, tuple[float, float]]]
    rounds: dict[str, dict[str, int]]
    episodes: int
    seed: int
    max_turns: int
    factory: str
    outcome: str
    scripted: str = SCRIPTED
    tolerance: float = GATE_TOLERANCE
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES

    @property
    def player_ratings(self) -> dict[str, float]:
        return self.ratings["player"]

    @property
    def enemy_ratings(self) -> dict[str, float]:
        return self.ratings["enemy"]

    def matrix(self, metric: str) -> list[list[float]]:
        """``metric`` (one of :data:`METRICS`) by player generation (rows) and enemy generation (columns)."""
        return [[float(getattr(self.matches[p, e], metric)) for e in self.enemies] for p in self.players]

    def interval_matrix(self, rate: str) -> list[list[list[float]]]:
        """The ``[low, high]`` interval of ``rate`` (one of :data:`RATES`) in every pairing, laid out as :meth:`matrix`."""
        return [[list(self.matches[p, e].interval(rate)) for e in self.enemies] for p in self.players]

    def payoff(self) -> Payoff:
        """The player's score matrix with its intervals and coins: what the verdicts and the heat map read."""
        bounds = np.array(self.interval_matrix("score"))
        return Payoff(
            self.players,
            self.enemies,
            np.array(self.matrix("score")),
            self.episodes,
            low=bounds[..., 0],
            high=bounds[..., 1],
            coins=np.array(self.matrix("mean_coins")),
        )

    def verdicts(self) -> dict[str, Any]:
        """Per-generation rows, exploitability and gates of both sides (:func:`~retro_gamer.adversarial.verdicts.verdicts`)."""
        return verdicts(self.payoff(), self.ratings, self.rating_intervals, self.scripted, self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        """Everything the tournament found, JSON-friendly: the settings (``factory``, ``outcome``, ``episodes``,
        ``seed``, ``max_turns``, ``confidence``, what ``score`` and ``intervals`` mean), ``players``/``enemies``
        (oldest first) and their ``rounds``; ``matrix[metric]`` (rows players, columns enemies; metric one of
        :data:`METRICS`, all from the player's side) and ``interval[rate]`` (the same layout, each cell
        ``[low, high]``); ``matches`` (one :meth:`MatchResult.summary` per pairing); ``ratings[side][name]`` and
        ``rating_intervals[side][name]`` (``[low, high]``); ``verdicts`` (:meth:`verdicts`)."""
        return {
            "factory": self.factory,
            "outcome": self.outcome,
            "episodes": self.episodes,
            "seed": self.seed,
            "max_turns": self.max_turns,
            "score": "the player's (wins + draws/2) / episodes; the enemy's is 1 - score",
            "confidence": self.confidence,
            "intervals": {
                "rates": "Clopper-Pearson, a draw counting as half a win in the score",
                "ratings": f"percentile bootstrap over the episode seeds, {self.resamples} resamples "
                f"drawn with seed {self.seed}",
            },
            "players": self.players,
            "enemies": self.enemies,
            "rounds": self.rounds,
            "matrix": {metric: self.matrix(metric) for metric in METRICS},
            "interval": {rate: self.interval_matrix(rate) for rate in RATES},
            "matches": [self.matches[p, e].summary() for p in self.players for e in self.enemies],
            "ratings": self.ratings,
            "rating_intervals": {
                side: {name: list(b) for name, b in bounds.items()} for side, bounds in self.rating_intervals.items()
            },
            "verdicts": self.verdicts(),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """:meth:`to_dict` as JSON text (``metrics/tournament.json``); written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            atomic_write_bytes(Path(path), text.encode())
        return text

    def rating_rows(self) -> list[dict[str, Any]]:
        """One row per generation for a DVC plot:
        ``{"round": 0, "side": "player", "generation": "r0", "rating": 1000.0, "low": 950.0, "high": 1050.0}``.

        ``round`` is the generation's name when it is a number, else the last number in its name, else its position."""
        rows = []
        for side in SIDES:
            for name, rating in self.ratings[side].items():
                low, high = self.rating_intervals[side][name]
                rows.append(
                    {
                        "round": self.rounds[side][name],
                        "side": side,
                        "generation": name,
                        "rating": round(rating, 2),
                        "low": round(low, 2),
                        "high": round(high, 2),
                    }
                )
        return rows

    def write_ratings(self, path: str | Path) -> Path:
        """:meth:`rating_rows` to ``path``: CSV when it ends in ``.csv``, else JSON."""
        path, rows = Path(path), self.rating_rows()
        if path.suffix == ".csv":
            text = "\n".join([",".join(rows[0]), *(",".join(str(v) for v in row.values()) for row in rows)]) + "\n"
        else:
            text = json.dumps(rows, indent=2) + "\n"
        atomic_write_bytes(path, text.encode())
        return path

    def write_heatmap(self, path: str | Path) -> Path:
        """The player's score matrix as a PNG heat map (:mod:`~retro_gamer.adversarial.heatmap`)."""
        game = self.factory.partition(":")[0].rpartition(".")[2]
        title = (
            f"{game}: the player's score (wins + draws/2)\n"
            f"{self.episodes} games a pair, {self.confidence:.0%} intervals"
        )
        return write_heatmap(self.payoff(), path, title)


def _tasks(
    players: list[Any], enemies: list[Any], episodes: int, workers: int, common: dict[str, Any]
) -> list[tuple[tuple[int, int], dict[str, Any]]]:
    """Each pairing's episodes in consecutive chunks: one chunk a pairing in one process, else enough chunks
    to keep every process busy."""
    pairs = [(i, j) for i in range(len(players)) for j in range(len(enemies))]
    pieces = 1 if workers <= 1 else min(episodes, -(-TASKS_PER_WORKER * workers // len(pairs)))
    starts = [episodes * c // pieces for c in range(pieces + 1)]
    return [
        ((i, j), {"player": players[i], "enemy": enemies[j], "first_episode": a, "episodes": b - a, **common})
        for i, j in pairs
        for a, b in itertools.pairwise(starts)
        if b > a
    ]


def _play(tasks: list[dict[str, Any]], workers: int) -> list[MatchResult]:
    workers = min(workers, len(tasks))
    if workers <= 1:
        return [play_chunk(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    for task in tasks:
        for key in ("player", "enemy", "factory", "outcome"):
            try:
                pickle.dumps(task[key])
            except (pickle.PicklingError, TypeError, AttributeError) as err:
                raise ValueError(
                    f"workers={workers} sends every {key} to other processes, and {task[key]!r} cannot be sent "
                    f"({err}). Give a run directory or model URI instead of a loaded policy, or workers=1."
                ) from None
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(play_chunk, tasks))


def round_robin(
    players: Mapping[Any, Any],
    enemies: Mapping[Any, Any],
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    max_turns: int = 200,
    factory: str | Callable[..., Any] = MATCH_FACTORY,
    outcome: str | Callable[..., Any] | None = None,
    workers: int = WORKERS,
    scripted: str = SCRIPTED,
    tolerance: float = GATE_TOLERANCE,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Tournament:
    """Every player generation against every enemy generation (``{name: source or None}`` each, oldest first).

    ``outcome`` is the game's outcome function (``None``: chase's, for chase's factory; another game must
    name its own). Episode k of every pairing starts from the same seed, derived from ``seed`` and k.
    ``workers`` processes share the episodes (1: all in this process; a loaded policy object must then be
    picklable, or use 1); the result does not depend on it. ``scripted`` names each side's scripted
    generation for the verdicts, ``tolerance`` is the gates', ``resamples`` the rating bootstrap's.
    """
    if not players or not enemies:
        raise ValueError("a round robin needs at least one player and one enemy generation")
    names_p, names_e = [str(k) for k in players], [str(k) for k in enemies]
    for side, names in (("player", names_p), ("enemy", names_e)):
        if len(set(names)) != len(names):
            raise ValueError(f"two {side} generations have the same name: {names}")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    resolve_factory(factory)
    judge = resolve_outcome(outcome, factory)  # refused here, before any process starts
    common = {"seed": seed, "max_turns": max_turns, "factory": factory, "outcome": outcome, "confidence": confidence}
    tasks = _tasks(list(players.values()), list(enemies.values()), episodes, workers, common)
    chunks: dict[tuple[int, int], list[MatchResult]] = {}
    for (pair, _), result in zip(tasks, _play([task for _, task in tasks], workers)):
        chunks.setdefault(pair, []).append(result)
    matches = {}
    for (i, j), parts in chunks.items():
        match = MatchResult.join(parts)
        match.player, match.enemy = names_p[i], names_e[j]
        matches[names_p[i], names_e[j]] = match
    points = np.array([[matches[p, e].points() for e in names_e] for p in names_p])
    fitted = fit_points(points)
    bounds = bootstrap_intervals(points, resamples, seed, confidence)
    return Tournament(
        players=names_p,
        enemies=names_e,
        matches=matches,
        ratings={
            side: {n: float(r) for n, r in zip(names, values)}
            for side, names, values in zip(SIDES, (names_p, names_e), fitted)
        },
        rating_intervals={
            side: {n: (float(b[0]), float(b[1])) for n, b in zip(names, values)}
            for side, names, values in zip(SIDES, (names_p, names_e), bounds)
        },
        rounds={
            "player": {n: _round_of(k, i) for i, (n, k) in enumerate(zip(names_p, players))},
            "enemy": {n: _round_of(k, i) for i, (n, k) in enumerate(zip(names_e, enemies))},
        },
        episodes=episodes,
        seed=seed,
        max_turns=max_turns,
        factory=spec_of(factory),
        outcome=spec_of(judge),
        scripted=scripted,
        tolerance=tolerance,
        confidence=confidence,
        resamples=resamples,
    )


def _pct(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]"


def format_table(t: Tournament) -> str:
    """The tournament for a terminal: the score matrix, each generation's row, exploitability and the gates."""
    found = t.verdicts()
    lines = [
        (
            f"{t.factory}: {t.episodes} games a pair (seed {t.seed}, at most {t.max_turns} turns); the player's "
            f"score = (wins + draws/2) / games, {t.confidence:.0%} intervals"
        ),
        "",
    ]
    width = 20
    lines.append("player \\ enemy".ljust(12) + "".join(e.rjust(width) for e in t.enemies))
    for p in t.players:
        cells = (f"{t.matches[p, e].score:.2f} {_pct(*t.matches[p, e].interval('score'))}" for e in t.enemies)
        lines.append(p.ljust(12) + "".join(c.rjust(width) for c in cells))
    lines += ["", f"{'side':7}{'gen':>6}{'rating':>8}  {'interval':14}  {'score vs scripted ' + t.scripted:26}coins"]
    for side in SIDES:
        for row in found["generations"][side]:
            vs = (
                "—"
                if row["score_vs_scripted"] is None
                else f"{row['score_vs_scripted']:.2f} {_pct(*row['score_vs_scripted_interval'])}"
            )
            low, high = row["rating_interval"]
            lines.append(
                f"{side:7}{row['generation']:>6}{row['rating']:8.0f}  [{low:5.0f}, {high:5.0f}]  "
                f"{vs:26}{row['mean_coins']:.2f}"
            )
    lines.append("")
    for side in SIDES:
        worst = found["exploitability"][side]
        lines.append(
            f"exploitability: {side} {worst['generation']} scores {worst['worst_score']:.2f} "
            f"{_pct(*worst['interval'])} at worst, against {'enemy' if side == 'player' else 'player'} "
            f"{worst['against']}"
        )
    for side in SIDES:
        gate = found["gate"][side]
        checks = "; ".join(
            f"vs {row['generation']} {row['final_mean']:.3f} against {row['mean']:.3f} "
            f"(margin {row['margin']:+.3f}) {'pass' if row['passed'] else 'FAIL'}"
            for row in gate["earlier"]
        )
        note = "" if gate["enough_episodes"] else f" (fewer than {GATE_EPISODES} games a pair: not decisive)"
        lines.append(
            f"gate (tolerance {gate['tolerance']}): {side} {gate['final']} "
            f"{'PASS' if gate['passed'] else 'FAIL'}{note}: {checks or 'no earlier generation'}"
        )
    return "\n".join(lines)


def _generation(text: str) -> tuple[str, str | None]:
    name, sep, source = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SOURCE (e.g. r1=runs/player_r1 or r0=scripted), got {text!r}")
    return name, None if source.strip().lower() in SCRIPTED_NAMES else source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retro_gamer.adversarial.tournament",
        description="Round robin: every player generation against every enemy generation, judged by the game's "
        "outcome, with 90 %% intervals, Elo-style ratings, exploitability and gates.",
        epilog="Example: python -m retro_gamer.adversarial.tournament --player r0=scripted --player r1=runs/player_r1 "
        "--enemy r0=scripted --enemy r1=models:/chase-enemy@champion --json metrics/tournament.json "
        "--heatmap metrics/payoff.png",
    )
    parser.add_argument(
        "--player",
        action="append",
        type=_generation,
        required=True,
        metavar="NAME=SOURCE",
        help="a player generation, oldest first: a run directory, a model URI, or 'scripted' (repeat)",
    )
    parser.add_argument(
        "--enemy",
        action="append",
        type=_generation,
        required=True,
        metavar="NAME=SOURCE",
        help="an enemy generation (repeat)",
    )
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="games a pair (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-turns", type=int, default=200)
    parser.add_argument("--factory", default=MATCH_FACTORY, help="the match game (default %(default)s)")
    parser.add_argument("--outcome", help="the game's outcome function, module:function (chase's for chase)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="processes (default %(default)s)")
    parser.add_argument("--scripted", default=SCRIPTED, help="the scripted generation's name (default %(default)s)")
    parser.add_argument("--tolerance", type=float, default=GATE_TOLERANCE, help="the gates' (default %(default)s)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="the rating bootstrap's (default %(default)s)")
    parser.add_argument("--json", type=Path, help="write everything here")
    parser.add_argument("--ratings", type=Path, help="write the rating rows here (.csv or .json), for a plot")
    parser.add_argument("--heatmap", type=Path, help="draw the payoff matrix here (.png)")
    args = parser.parse_args(argv)
    if args.heatmap is not None and args.heatmap.suffix.lower() != ".png":
        parser.error(f"--heatmap {args.heatmap}: the heat map is a PNG; name a .png file")  # before any game is played
    from retro_gamer.errors import RetroGamerError
    from retro_gamer.extras import require

    try:
        for module in ("scipy", "matplotlib") if args.heatmap is not None else ("scipy",):  # before any game
            require(module, "train", parser.prog)
        result = round_robin(
            dict(args.player),
            dict(args.enemy),
            args.episodes,
            args.seed,
            args.max_turns,
            args.factory,
            args.outcome,
            args.workers,
            args.scripted,
            args.tolerance,
            args.resamples,
        )
        if args.heatmap is not None:
            result.write_heatmap(args.heatmap)
    except (RetroGamerError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    if args.json is not None:
        result.to_json(args.json)
    if args.ratings is not None:
        result.write_ratings(args.ratings)
    print(format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
