"""What a tournament's payoff matrix says about each side: per-generation rows, exploitability and the gate.

Pure functions of a :class:`Payoff` (the player's score in every pairing), so they can be checked on
constructed matrices without playing a game. The enemy's score is ``1 − the player's``: the rules give a
zero-sum result (win / draw / loss), so either side's view follows from one matrix.

* **Exploitability** of a side's final generation: its worst score against any generation of the other
  side, and which. A side that only beats the generation it trained against shows a low worst case.
* **The gate**: the final generation of a side must do at least as well as every earlier generation of
  its own side against the *common opponent set*, all of the other side's generations: its mean score over
  them is at least each earlier generation's mean minus ``tolerance`` (0.05). A gate decides on pairings
  of at least :data:`GATE_EPISODES` games; ``enough_episodes`` says whether the tournament played that many.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SIDES = ("player", "enemy")
GATE_TOLERANCE = 0.05
GATE_EPISODES = 200
SCRIPTED = "r0"
_SLACK = 1e-9  # a margin that equals -tolerance up to floating-point rounding passes


@dataclass(frozen=True)
class Payoff:
    """The player's score (wins + draws/2 over episodes) of every pairing, players as rows and enemies as
    columns, with its interval bounds (``low``/``high``, the score itself when not known), the mean coins
    the player collected (optional) and the episodes each pairing played."""

    players: list[str]
    enemies: list[str]
    score: np.ndarray
    episodes: int
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    coins: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = (len(self.players), len(self.enemies))
        for name in ("score", "low", "high", "coins"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(
                    f"the payoff's {name} has shape {np.shape(value)}; {shape} (players x enemies) expected"
                )

    def view(self, side: str) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
        """``side``'s generations, the opponent generations, and its score, low and high bounds with the
        side's generations as rows."""
        score = np.asarray(self.score, dtype=float)
        low = score if self.low is None else np.asarray(self.low, dtype=float)
        high = score if self.high is None else np.asarray(self.high, dtype=float)
        if side == "player":
            return self.players, self.enemies, score, low, high
        if side == "enemy":
            return self.enemies, self.players, 1 - score.T, 1 - high.T, 1 - low.T
        raise ValueError(f"side is 'player' or 'enemy', not {side!r}")

    def coins_of(self, side: str) -> np.ndarray | None:
        """The mean coins in each of ``side``'s pairings (collected by a player, conceded by an enemy)."""
        if self.coins is None:
            return None
        coins = np.asarray(self.coins, dtype=float)
        return coins if side == "player" else coins.T


def generation_rows(
    payoff: Payoff,
    side: str,
    ratings: dict[str, float],
    rating_intervals: dict[str, tuple[float, float]],
    scripted: str = SCRIPTED,
) -> list[dict[str, Any]]:
    """One row per generation of ``side``: its rating and interval, its score (and interval) against the other
    side's ``scripted`` generation (``None`` when the other side has no generation of that name), and its mean
    coins over all its pairings."""
    names, opponents, score, low, high = payoff.view(side)
    coins = payoff.coins_of(side)
    col = opponents.index(scripted) if scripted in opponents else None
    rows = []
    for i, name in enumerate(names):
        rows.append(
            {
                "generation": name,
                "rating": float(ratings[name]),
                "rating_interval": [float(b) for b in rating_intervals[name]],
                "score_vs_scripted": None if col is None else float(score[i, col]),
                "score_vs_scripted_interval": None if col is None else [float(low[i, col]), float(high[i, col])],
                "mean_coins": None if coins is None else float(coins[i].mean()),
            }
        )
    return rows


def exploitability(payoff: Payoff, side: str) -> dict[str, Any]:
    """The final generation of ``side``'s worst score against any opponent generation, its interval, and
    which opponent (the first in order when several tie)."""
    names, opponents, score, low, high = payoff.view(side)
    worst = int(np.argmin(score[-1]))
    return {
        "generation": names[-1],
        "worst_score": float(score[-1, worst]),
        "interval": [float(low[-1, worst]), float(high[-1, worst])],
        "against": opponents[worst],
    }


def gate(payoff: Payoff, side: str, tolerance: float = GATE_TOLERANCE) -> dict[str, Any]:
    """Whether ``side``'s final generation passes its gate (see the module docstring): per earlier generation
    the two mean scores over the common opponent set, the margin (final − earlier) and whether it is at
    least ``-tolerance``; ``passed`` when every earlier generation's check passes."""
    names, _, score, _, _ = payoff.view(side)
    means = score.mean(axis=1)
    final_mean = float(means[-1])
    earlier = []
    for name, mean in zip(names[:-1], means[:-1]):
        margin = final_mean - float(mean)
        earlier.append(
            {
                "generation": name,
                "mean": float(mean),
                "final_mean": final_mean,
                "margin": margin,
                "passed": margin >= -tolerance - _SLACK,
            }
        )
    return {
        "final": names[-1],
        "final_mean": final_mean,
        "tolerance": tolerance,
        "earlier": earlier,
        "passed": all(row["passed"] for row in earlier),
        "episodes": payoff.episodes,
        "enough_episodes": payoff.episodes >= GATE_EPISODES,
    }


def verdicts(
    payoff: Payoff,
    ratings: dict[str, dict[str, float]],
    rating_intervals: dict[str, dict[str, tuple[float, float]]],
    scripted: str = SCRIPTED,
    tolerance: float = GATE_TOLERANCE,
) -> dict[str, Any]:
    """Everything above for both sides: ``{"scripted", "tolerance", "generations": {side: rows},
    "exploitability": {side: …}, "gate": {side: …}}``; ``ratings`` and ``rating_intervals`` are keyed by side."""
    return {
        "scripted": scripted,
        "tolerance": tolerance,
        "generations": {
            side: generation_rows(payoff, side, ratings[side], rating_intervals[side], scripted) for side in SIDES
        },
        "exploitability": {side: exploitability(payoff, side) for side in SIDES},
        "gate": {side: gate(payoff, side, tolerance) for side in SIDES},
    }
