"""Opponent pools: a training stage plays against a mixture of the other side's generations, one drawn per game.

A side trained only against the newest opponent forgets how to beat the ones before it and learns to exploit one
policy rather than to play well: each generation then beats only the generation it trained against. A pool keeps
the older opponents in play. The other side's generations, oldest first, share it by :class:`PoolShares`:
the newest gets most games, the scripted round-0 side always a fixed share, and the generations in between
(the newest ``window`` of them) split the rest equally.

A pool is a file, ``opponents.json`` in the run directory of the generation that trains against it, so the
opponents a generation met are recorded with it; the game factory's ``opponent`` argument names the file, and
:class:`OpponentPool` plays it: each game draws one member when it first asks for a move and keeps it to the end.
"""

from __future__ import annotations

import json
import os
import random
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.files import atomic_write_bytes
from retro_gamer.games.loading import is_model_uri

POOL_FILE = "opponents.json"
SHARES_SOURCE = "params.yaml"  # where the pipeline's shares are set (adversarial.pool)
_TOLERANCE = 1e-6  # shares written as JSON floats still sum to 1 within this


@dataclass(frozen=True)
class PoolShares:
    """How a pool is split between the other side's generations (``adversarial.pool`` in ``params.yaml``).

    * ``latest``: the newest generation's share. Most games go to the opponent that is hardest now, as in
      Unity ML-Agents' self-play, whose default plays the latest policy 50 % of the time and a past snapshot
      otherwise; OpenAI Five trained 80 % against itself and 20 % against past versions.
    * ``scripted``: the scripted round-0 side's share, kept in every pool. The trained generations form a
      small population that can drift into beating only one another; the script is an opponent outside that
      population, and training on it keeps a floor of skill against players the population never contained.
    * ``window``: how many of the trained generations between the scripted and the newest share the rest, the
      newest of them first (Unity's window of 10 snapshots); the rest is split equally. AlphaStar's prioritised
      fictitious self-play weights past opponents by how often they still win; equal shares are its simplest
      form, and need no results between generations before training.
    """

    latest: float = 0.4
    scripted: float = 0.4
    window: int = 10

    def __post_init__(self) -> None:
        problems = []
        for key in ("latest", "scripted"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                problems.append(f"adversarial.pool.{key} = {value!r} is not a share: give a number from 0 to 1.")
        if not problems and self.latest + self.scripted > 1 + _TOLERANCE:
            problems.append(
                f"adversarial.pool.latest + adversarial.pool.scripted = {self.latest} + {self.scripted} is "
                "more than 1: they are shares of the same games; lower one of them."
            )
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 0:
            problems.append(
                f"adversarial.pool.window = {self.window!r} is not a count: give a whole number, 0 or more "
                "(0 gives the in-between generations' share to the latest)."
            )
        if problems:
            raise ConfigError(SHARES_SOURCE, problems)


@dataclass(frozen=True)
class Member:
    """One opponent of a pool: its name (``enemy_r2``), where its policy is (a run directory or model URI;
    ``None`` for the game's scripted side) and the share of games it plays."""

    name: str
    source: str | None
    share: float


def pool_members(opponents: Sequence[tuple[str, str | None]], shares: PoolShares) -> list[Member]:
    """The pool over ``opponents``, ``(name, source)`` pairs of the other side's generations oldest first: the
    scripted round 0 first, the latest last. A lone opponent plays every game. Otherwise the first gets
    ``scripted``, the last ``latest``, and the ``window`` newest generations between them share the rest equally
    (the latest takes it when there are none). Members with no share are left out; the shares sum to 1."""
    if not opponents:
        raise ValueError("an opponent pool needs at least one opponent (the other side's round 0)")
    if len(opponents) == 1:
        ((name, source),) = opponents
        return [Member(name, source, 1.0)]
    first, *between, last = opponents
    between = between[len(between) - shares.window :] if shares.window else []
    rest = 1.0 - shares.scripted - shares.latest
    latest = shares.latest + (rest if not between else 0.0)
    listed = [(first, shares.scripted), *((o, rest / len(between)) for o in between), (last, latest)]
    return [Member(name, source, share) for (name, source), share in listed if share > 0]


def _check_members(members: Sequence[Member], where: str) -> None:
    """A pool plays only when it has members, their names differ and their shares are a split of all games."""
    fix = "write it again (the pipeline does: `dvc repro`), or give each member a share so that they sum to 1"
    if not members:
        raise RetroGamerError(f"The opponent pool {where} has no members: {fix}.")
    names = [m.name for m in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RetroGamerError(
            f"The opponent pool {where} names {', '.join(repeated)} more than once: each member "
            "is counted by its name, so give each a name of its own."
        )
    bad = [
        f"{m.name} {m.share!r}"
        for m in members
        if isinstance(m.share, bool) or not isinstance(m.share, (int, float)) or not 0 < m.share <= 1
    ]
    if bad:
        raise RetroGamerError(f"The opponent pool {where} has shares outside (0, 1]: {', '.join(bad)}; {fix}.")
    total = sum(m.share for m in members)
    if abs(total - 1) > _TOLERANCE:
        raise RetroGamerError(f"The shares of the opponent pool {where} sum to {total:g}, not 1; {fix}.")


def write_pool(path: Path, members: Sequence[Member]) -> None:
    """Write the pool file. A run directory's source is kept relative to the file's folder, so the pool still
    names the same generations when the folders around it move together (a DVC checkout elsewhere); model URIs
    are kept as they are."""
    path = Path(path)
    _check_members(members, f"for {path}")
    folder = path.parent.resolve()

    def portable(source: str | None) -> str | None:
        if source is None or is_model_uri(source):
            return source
        return Path(os.path.relpath(Path(source).resolve(), folder)).as_posix()

    data = {"members": [{"name": m.name, "source": portable(m.source), "share": m.share} for m in members]}
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def read_pool(path: Path) -> list[Member]:
    """The members of a pool file (run directories made absolute)."""
    path = Path(path)
    fix = "Write it again (the pipeline does: `dvc repro`), or name a run directory as the opponent instead."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetroGamerError(f"The opponent pool {path} does not exist. {fix}") from None
    except OSError as err:
        raise RetroGamerError(f"The opponent pool {path} cannot be read: {err.strerror or err}. {fix}") from None
    except ValueError as err:
        raise RetroGamerError(f"The opponent pool {path} is not valid JSON ({err}). {fix}") from None
    expected = '{"members": [{"name": "enemy_r0", "source": null, "share": 1.0}, ...]}'
    try:
        rows = data["members"]
        if not isinstance(rows, list):
            raise TypeError
        folder = path.parent.resolve()
        members = []
        for row in rows:
            source = row["source"]
            if source is not None and not isinstance(source, str) or not isinstance(row["name"], str):
                raise TypeError
            if source is not None and not is_model_uri(source):
                source = os.path.normpath(folder / source)
            members.append(Member(row["name"], source, row["share"]))
    except (KeyError, TypeError):
        raise RetroGamerError(f"The opponent pool {path} is damaged: it should read {expected}. {fix}") from None
    _check_members(members, str(path))
    return members


class OpponentPool:
    """The opponent slot of a game (``policy.get_action(game)`` every turn), played by a pool.

    A game draws one member when it first asks for a move and keeps it for all its turns, so every episode
    is against one opponent while the games a trainer steps together interleave their turns. The draw is part
    of the game's own randomness: Python's global ``random``, which the trainer seeds from ``trainer.seed`` and
    keeps in ``resume.pt``, and which replay recordings and tournaments save and put back. So the same seed meets
    the same opponents, a resumed run the ones an unstopped run would have met, and a replay recorded during
    training (at moments the clock decides) changes nothing. A separate generator would fail both.

    ``scripted()`` makes the game's scripted policy for a member without a source; ``load(source)`` loads a
    trained one. Each member's policy is made once, when it is first drawn.
    """

    def __init__(self, members: Sequence[Member], scripted: Callable[[], Any], load: Callable[[str], Any]):
        _check_members(members, "given")
        self.members = list(members)
        self._scripted, self._load = scripted, load
        cumulative = np.cumsum([m.share for m in self.members])
        self._edges = cumulative / cumulative[-1]
        self._policies: dict[str, Any] = {}
        self._assigned: weakref.WeakKeyDictionary[Any, Member] = weakref.WeakKeyDictionary()
        self._draws = dict.fromkeys((m.name for m in self.members), 0)

    @classmethod
    def from_file(cls, path: Path, scripted: Callable[[], Any], load: Callable[[str], Any]) -> OpponentPool:
        return cls(read_pool(path), scripted, load)

    def get_action(self, game: Any) -> Any:
        """The move of the member ``game`` drew."""
        return self._policy(self.member_of(game)).get_action(game)

    def member_of(self, game: Any) -> Member:
        """The member ``game`` plays against (drawn now if the game is new)."""
        member = self._assigned.get(game)
        if member is None:
            index = min(int(np.searchsorted(self._edges, random.random(), side="right")), len(self.members) - 1)
            member = self._assigned[game] = self.members[index]
            self._draws[member.name] += 1
        return member

    def _policy(self, member: Member) -> Any:
        if member.name not in self._policies:
            self._policies[member.name] = self._scripted() if member.source is None else self._load(member.source)
        return self._policies[member.name]

    @property
    def draws(self) -> dict[str, int]:
        """Games per member so far, in the pool's order: what a run met, to record with it."""
        return dict(self._draws)

    def describe(self) -> str:
        """The pool in one line (:func:`describe`)."""
        return describe(self.members)


def describe(members: Sequence[Member]) -> str:
    """A pool in one line, ``enemy_r0 30 %, enemy_r1 20 %, enemy_r2 50 %`` (for an MLflow param and the log)."""
    return ", ".join(f"{m.name} {100 * m.share:.3g} %" for m in members)


def is_pool_file(source: object) -> bool:
    """Whether an opponent source names a pool file (``opponents.json``, or any ``.json``) rather than a run."""
    if not isinstance(source, (str, os.PathLike)) or is_model_uri(source):
        return False
    path = Path(os.fspath(source))
    return path.name == POOL_FILE or path.suffix == ".json"
