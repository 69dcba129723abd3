"""The games a trainer plays at once, stepped together: in this process, or in a second one.

A game's own logic is plain Python and runs on one core; learning runs on another. With
:class:`GameProcess` the trainer hands a turn's actions over, learns while the games play them,
and collects the results (``step_async`` / ``step_wait``). Turns queue up: the trainer plays the
games in two groups, sending one group's turn before collecting the other's, so the games' process
always has the next turn waiting. :class:`LocalGames` has the same methods and plays in the
caller's process, in the same order (queued turns first, then a restart). The games draw from
Python's global ``random``, seeded the same way in both, so the same calls give the same games,
number for number.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, Protocol, TypeVar

import numpy as np

from retro_gamer.env.environment import GameEnvironment
from retro_gamer.errors import RetroGamerError
from retro_gamer.games import GameDescription, game_factory
from retro_gamer.games.faults import GameCodeError
from retro_gamer.runtime.child_process import ChildProcess

P = ParamSpec("P")
R = TypeVar("R")


class Turn(NamedTuple):
    """One turn of every game: the new observations and what the turn gave."""

    board: np.ndarray  # (n, h, w) uint8
    extras: np.ndarray  # (n, k) float32
    reward: np.ndarray  # (n,) float64
    terminated: np.ndarray  # (n,) bool: the game ended
    truncated: np.ndarray  # (n,) bool: max_turns ran out


class LocalGames:
    """``count`` games of ``desc``, played in this process."""

    groups = 1  # how many groups the trainer plays in turn: here nothing overlaps, and each costs an action choice

    def __init__(self, desc: GameDescription, run_dir: Path, count: int, seed: int):
        random.seed(seed)  # retro games draw from Python's global random
        factory = game_factory(desc, run_dir)
        self.envs = [GameEnvironment(desc, factory, run_dir) for _ in range(count)]
        self.dims = self.envs[0].dims
        self._queued: deque[tuple[list[int], np.ndarray]] = deque()  # turns asked for, not yet played
        self._played: deque[Turn] = deque()  # turns played, not yet collected

    def reset(self, indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start fresh games at ``indices`` (all by default), after the turns queued before; their first observations."""
        self._play_queued()
        chosen = range(len(self.envs)) if indices is None else indices
        first = [self.envs[i].reset() for i in chosen]
        return np.stack([o.board for o in first]), np.stack([o.extras for o in first])

    def step_async(self, actions: np.ndarray, indices: list[int] | None = None) -> None:
        """Queue one turn of the games at ``indices`` (all by default), ``actions`` in the same order."""
        self._queued.append((list(range(len(self.envs))) if indices is None else indices, actions))

    def step_wait(self) -> Turn:
        """The oldest queued turn, played."""
        if not self._played:
            self._play(*self._queued.popleft())
        return self._played.popleft()

    def play_turn(self, actions: np.ndarray, indices: list[int] | None = None) -> Turn:
        """Queue a turn and play it (what the games' process does for each turn it is sent)."""
        self.step_async(actions, indices)
        return self.step_wait()

    def _play(self, indices: list[int], actions: np.ndarray) -> None:
        results = [self.envs[i].step(int(a)) for i, a in zip(indices, actions)]
        self._played.append(
            Turn(
                np.stack([r[0].board for r in results]),
                np.stack([r[0].extras for r in results]),
                np.array([r[1] for r in results], dtype=np.float64),
                np.array([r[2] for r in results]),
                np.array([r[3] for r in results]),
            )
        )

    def _play_queued(self) -> None:
        while self._queued:
            self._play(*self._queued.popleft())

    def random_state(self) -> Any:
        """The games' random-number state (after the queued turns), for the resume state."""
        self._play_queued()
        return random.getstate()

    def set_random_state(self, state: Any) -> None:
        random.setstate(state)

    def close(self) -> None:
        pass


class GameBatch(Protocol):
    """What the trainer asks of its games, played in this process (:class:`LocalGames`) or in a second one
    (:class:`GameProcess`), number for number the same."""

    dims: dict[str, Any]  # the observation's sizes
    groups: int  # how many groups the trainer plays in turn

    def reset(self, indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def step_async(self, actions: np.ndarray, indices: list[int] | None = None) -> None: ...

    def step_wait(self) -> Turn: ...

    def random_state(self) -> Any: ...

    def set_random_state(self, state: Any) -> None: ...

    def close(self) -> None: ...


class GameProcess(ChildProcess[LocalGames]):
    """The same games as :class:`LocalGames`, played in a child process (:mod:`~retro_gamer.runtime.child_process`)
    while this one learns."""

    role = "the games' process"
    groups = 2  # one group's turn is played while this process records the other's and learns

    def __init__(self, desc: GameDescription, run_dir: Path, count: int, seed: int) -> None:
        self._final_random_state: Any = None
        self._in_flight = 0  # turns sent whose answers are not read yet
        self._early: deque[Turn] = deque()  # turns read while waiting for a later answer
        super().__init__(LocalGames, desc, Path(run_dir).resolve(), count, seed)
        self.dims = self.call(_dims)

    def call(self, method: Callable[Concatenate[LocalGames, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``method`` there and return its answer; the answers to turns sent before it come first and are kept."""
        self._post(method, *args, **kwargs)
        while self._in_flight:
            self._in_flight -= 1
            self._early.append(self._answer())
        answer: R = self._answer()
        return answer

    def reset(self, indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.call(LocalGames.reset, indices)

    def step_async(self, actions: np.ndarray, indices: list[int] | None = None) -> None:
        self._post(LocalGames.play_turn, actions, indices)
        self._in_flight += 1

    def step_wait(self) -> Turn:
        if self._early:
            return self._early.popleft()
        self._in_flight -= 1
        turn: Turn = self._answer()
        return turn

    def random_state(self) -> Any:
        """The games' random-number state (after :meth:`close`, the state they ended in)."""
        if not self.alive:
            return self._final_random_state
        return self.call(LocalGames.random_state)

    def set_random_state(self, state: Any) -> None:
        self.call(LocalGames.set_random_state, state)

    def close(self) -> None:
        """Let the child finish (keeping the games' last random state), or stop it if it does not."""
        if self.alive:
            with contextlib.suppress(RuntimeError, OSError, RetroGamerError, GameCodeError):
                # a queued turn failed too, and was reported first
                self._final_random_state = self.call(LocalGames.random_state)
        self._end()


def _dims(games: LocalGames) -> dict[str, Any]:
    return games.dims


def open_games(desc: GameDescription, run_dir: Path, count: int, seed: int, game_process: bool) -> GameBatch:
    """:class:`GameProcess` (``game_process``) or :class:`LocalGames`: the same games, number for number; the
    trainer plays them in ``groups`` groups (two in the games' process, one here)."""
    return GameProcess(desc, run_dir, count, seed) if game_process else LocalGames(desc, run_dir, count, seed)
