"""One match: greedy episodes of a two-sided match game between one player and one enemy, judged only by
the game's outcome function.

The match game protocol (chase's :func:`~retro_gamer.examples.chase.create_match_game` and
:func:`~retro_gamer.examples.chase.outcome` follow it): ``factory(player=SOURCE, enemy=SOURCE)`` returns a
``retro.game.Game`` whose sides act on their own (no keyboard); a ``turn_limit=`` parameter, when the
factory has one, receives ``max_turns``. A source is a run directory, an MLflow model URI, an object with
``get_action(game)``, or ``None`` for the game's scripted round-0 side. ``outcome(game)`` reads a finished
game as ``{"player": "win" | "draw" | "loss", "enemy": the opposite}``; a game cut at ``max_turns`` before it
ended is judged on the position it reached. ``game.state['coins']``, when the game keeps it, is reported too.

A player's **score** is ``(wins + draws/2) / episodes``; the enemy's is ``1 − score``.

**Common random numbers**: episode ``k`` starts from Python's global ``random`` seeded with
:func:`episode_seed` ``(seed, k)``, which sets the starts, the coins and the scripted sides' draws. Every
pairing of a tournament therefore plays the same episodes, and pairings differ only by their policies.
Because each episode has its own seed, any split of the episodes over processes plays the same games.
"""

from __future__ import annotations

import hashlib
import inspect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retro_gamer.adversarial.intervals import CONFIDENCE, clopper_pearson

MATCH_FACTORY = "retro_gamer.examples.chase:create_match_game"
MATCH_OUTCOME = "retro_gamer.examples.chase:outcome"
POINTS = {"win": 1.0, "draw": 0.5, "loss": 0.0}
_MIRROR = {"win": "loss", "draw": "draw", "loss": "win"}
RATES = ("win_rate", "draw_rate", "loss_rate", "score")


def episode_seed(seed: int, episode: int) -> int:
    """The ``random`` seed of episode ``episode`` of a match seeded ``seed``: a hash, so nearby seeds and
    episodes give unrelated games, and the same in every process (unlike ``hash()`` of a string)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{episode}".encode()).digest()[:8], "big")


def spec_of(function: str | Callable[..., Any]) -> str:
    """``module:name`` for a function (how a tournament records its factory and outcome)."""
    return function if isinstance(function, str) else f"{function.__module__}:{function.__qualname__}"


def resolve_factory(factory: str | Callable[..., Any]) -> Callable[..., Any]:
    """The match game factory named by ``factory`` (any form :func:`retro_gamer.games.load_factory` reads)."""
    if callable(factory):
        return factory
    from retro_gamer.games import load_factory

    return load_factory(factory)


def resolve_outcome(
    outcome: str | Callable[..., Any] | None, factory: str | Callable[..., Any]
) -> Callable[[Any], dict[str, str]]:
    """The outcome function: ``outcome`` itself, a ``module:function`` (or ``file.py:function``) string, or,
    when ``None``, chase's for chase's factory. Another game must name its own: a result read by the wrong
    rules would be silently wrong."""
    if outcome is None:
        from retro_gamer.examples import chase

        if factory not in (MATCH_FACTORY, chase.create_match_game):
            raise ValueError(
                f"the match game {spec_of(factory)} is not chase's: name its outcome function "
                "(outcome='my_game:outcome', returning {'player': 'win'|'draw'|'loss', 'enemy': …})"
            )
        return chase.outcome
    if callable(outcome):
        return outcome
    from retro_gamer.games.loading import import_target

    target, sep, name = outcome.rpartition(":")
    function = getattr(import_target(target), name, None) if sep else None
    if not callable(function):
        raise ValueError(f"the outcome {outcome!r} names no function: give it as 'module:function'")
    return function


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def label(source: Any) -> str:
    """How a source is named in a result: its text, a policy's ``source``, or ``scripted`` for ``None``."""
    if source is None:
        return "scripted"
    return str(getattr(source, "source", source))


@dataclass
class MatchResult:
    """The episodes of one pairing, in episode order: the player's result of each (``win``/``draw``/``loss``),
    the coins it held at the end and the turns played. Rates, scores and intervals are derived from them."""

    player: str
    enemy: str
    results: list[str] = field(repr=False)
    coins: list[float] = field(repr=False)
    lengths: list[int] = field(repr=False)
    confidence: float = CONFIDENCE

    @property
    def episodes(self) -> int:
        return len(self.results)

    @property
    def wins(self) -> int:
        return self.results.count("win")

    @property
    def draws(self) -> int:
        return self.results.count("draw")

    @property
    def losses(self) -> int:
        return self.results.count("loss")

    @property
    def win_rate(self) -> float:
        return self.wins / self.episodes

    @property
    def draw_rate(self) -> float:
        return self.draws / self.episodes

    @property
    def loss_rate(self) -> float:
        return self.losses / self.episodes

    @property
    def score(self) -> float:
        """The player's score, ``(wins + draws/2) / episodes``."""
        return (self.wins + self.draws / 2) / self.episodes

    @property
    def mean_coins(self) -> float:
        return float(np.mean(self.coins))

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.lengths))

    def points(self) -> np.ndarray:
        """The player's points per episode (1, ½ or 0), for the rating bootstrap."""
        return np.array([POINTS[r] for r in self.results])

    def interval(self, rate: str) -> tuple[float, float]:
        """The Clopper–Pearson interval (:mod:`~retro_gamer.adversarial.intervals`) of one of :data:`RATES`."""
        successes = {
            "win_rate": self.wins,
            "draw_rate": self.draws,
            "loss_rate": self.losses,
            "score": self.wins + self.draws / 2,
        }[rate]
        return clopper_pearson(successes, self.episodes, self.confidence)

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly figures (no per-episode lists)."""
        out: dict[str, Any] = {
            "player": self.player,
            "enemy": self.enemy,
            "episodes": self.episodes,
            "wins": self.wins,
            "draws": self.draws,
            "losses": self.losses,
        }
        for rate in RATES:
            out[rate] = getattr(self, rate)
            out[f"{rate}_interval"] = list(self.interval(rate))
        out["mean_coins"], out["mean_length"] = self.mean_coins, self.mean_length
        return out

    @classmethod
    def join(cls, parts: Sequence[MatchResult]) -> MatchResult:
        """One result from consecutive chunks of the same pairing's episodes, in order."""
        first = parts[0]
        return cls(
            first.player,
            first.enemy,
            [r for p in parts for r in p.results],
            [c for p in parts for c in p.coins],
            [n for p in parts for n in p.lengths],
            first.confidence,
        )


def play_match(
    player: Any,
    enemy: Any,
    episodes: int = 200,
    seed: int = 0,
    max_turns: int = 200,
    factory: str | Callable[..., Any] = MATCH_FACTORY,
    outcome: str | Callable[..., Any] | None = None,
    first_episode: int = 0,
    confidence: float = CONFIDENCE,
) -> MatchResult:
    """Play episodes ``first_episode … first_episode + episodes − 1`` of ``factory(player=…, enemy=…)``, each
    from its own :func:`episode_seed`, and judge each with the outcome function (see the module docstring).

    The caller's global ``random`` state is put back as it was afterwards, so its random sequence is not
    disturbed by the match."""
    from retro.input import ProgrammaticInput

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    judge = resolve_outcome(outcome, factory)
    make = resolve_factory(factory)
    extra = {"turn_limit": max_turns} if _accepts(make, "turn_limit") else {}
    saved = random.getstate()
    results, coins, lengths = [], [], []
    try:
        for k in range(first_episode, first_episode + episodes):
            random.seed(episode_seed(seed, k))
            game = make(player=player, enemy=enemy, **extra)
            game.input_source, game.view = ProgrammaticInput(), None
            game.start()
            turns = 0
            while game.playing and turns < max_turns:
                game.step()
                turns += 1
            verdict = judge(game)
            mine = verdict.get("player") if isinstance(verdict, dict) else None
            if mine not in POINTS or verdict.get("enemy") != _MIRROR[mine]:
                raise ValueError(
                    f"the outcome function {spec_of(judge)} returned {verdict!r}; a match needs "
                    "{'player': 'win'|'draw'|'loss', 'enemy': the opposite}"
                )
            results.append(mine)
            coins.append(float(game.state.get("coins", 0)))
            lengths.append(turns)
    finally:
        random.setstate(saved)
    return MatchResult(label(player), label(enemy), results, coins, lengths, confidence)


def play_chunk(task: dict[str, Any]) -> MatchResult:
    """:func:`play_match` from one dict of its arguments: the unit of work a tournament's processes run."""
    return play_match(**task)
