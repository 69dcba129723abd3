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

import os
import pickle
import random
import select
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from retro_gamer.env import GameEnvironment
from retro_gamer.errors import RetroGamerError
from retro_gamer.faults import GameCodeError, game_frames
from retro_gamer.games import GameDescription, game_factory

if TYPE_CHECKING:
    from retro_gamer.config import RunConfig


class Turn(NamedTuple):
    """One turn of every game: the new observations and what the turn gave."""

    board: np.ndarray  # (n, h, w) uint8
    extras: np.ndarray  # (n, k) float32
    reward: np.ndarray  # (n,) float64
    terminated: np.ndarray  # (n,) bool: the game ended
    truncated: np.ndarray  # (n,) bool: max_turns ran out


class LocalGames:
    """``count`` games of ``desc``, played in this process."""

    groups = 1  # how many groups the trainer plays in turn: here nothing overlaps, and each group costs an action choice

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

    def _play(self, indices: list[int], actions: np.ndarray) -> None:
        results = [self.envs[i].step(int(a)) for i, a in zip(indices, actions)]
        self._played.append(Turn(np.stack([r[0].board for r in results]), np.stack([r[0].extras for r in results]),
                                 np.array([r[1] for r in results], dtype=np.float64),
                                 np.array([r[2] for r in results]), np.array([r[3] for r in results])))

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


class GameProcess:
    """The same games as :class:`LocalGames`, played in a child Python process while this one learns.

    The child is a fresh interpreter (``python -c``) with this process's ``sys.path``, so it imports the
    game the same way and never re-runs the caller's script. Calls and answers are pickles over its
    stdin/stdout; the game's own prints go to stderr. It ignores Ctrl+C (the trainer decides when to
    stop) and ends when its stdin closes. An exception in the child comes back here: a retro-gamer
    error as itself, the game's own failure as :class:`~retro_gamer.faults.GameCodeError` with its
    frames, anything else with the child's traceback.
    """

    groups = 2  # one group's turn is played while this process records the other's and learns

    def __init__(self, desc: GameDescription, run_dir: Path, count: int, seed: int):
        command = [sys.executable, "-c", "from retro_gamer.game_batch import serve; serve()"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # an opponent's network: one core
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._final_random_state: Any = None
        self._in_flight = 0  # turns sent whose answers are not read yet
        self._early: deque[Turn] = deque()  # turns read while waiting for a later answer
        try:
            self._send(("start", list(sys.path), desc, Path(run_dir).resolve(), count, seed))
            self.dims = self._answer()
        except BaseException:
            self.close()
            raise

    def _send(self, message: tuple) -> None:
        try:
            pickle.dump(message, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._answer()  # the child is gone: say why
            raise

    def _answer(self) -> Any:
        _await(self._process.stdout)
        try:
            kind, value = pickle.load(self._process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            code = self._process.wait()
            raise RuntimeError(f"the games' process (pid {self._process.pid}) ended unexpectedly with exit code {code}; "
                               "its messages, if any, are above") from None
        if kind == "error":
            raise _rebuild(value)
        return value

    def _call(self, *message: Any) -> Any:
        """Send a call and return its answer; the answers to turns sent before it come first and are kept."""
        self._send(message)
        while self._in_flight:
            self._in_flight -= 1
            self._early.append(self._answer())
        return self._answer()

    def reset(self, indices: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self._call("reset", indices)

    def step_async(self, actions: np.ndarray, indices: list[int] | None = None) -> None:
        self._send(("step", actions, indices))
        self._in_flight += 1

    def step_wait(self) -> Turn:
        if self._early:
            return self._early.popleft()
        self._in_flight -= 1
        return self._answer()

    def random_state(self) -> Any:
        """The games' random-number state (after :meth:`close`, the state they ended in)."""
        if self._process.poll() is not None:
            return self._final_random_state
        return self._call("random_state")

    def set_random_state(self, state: Any) -> None:
        self._call("set_random_state", state)

    def close(self) -> None:
        """Let the child finish (keeping the games' last random state), or stop it if it does not."""
        if self._process.poll() is None:
            try:
                self._final_random_state = self._call("random_state")
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, RetroGamerError, GameCodeError):  # a queued turn failed too
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def open_games(desc: GameDescription, run_dir: Path, count: int, seed: int, second_process: bool) -> LocalGames | GameProcess:
    """:class:`GameProcess` or :class:`LocalGames`: the same games, number for number; the trainer plays
    them in ``groups`` groups (two in the games' process, one here)."""
    return GameProcess(desc, run_dir, count, seed) if second_process else LocalGames(desc, run_dir, count, seed)


def want_second_process(cfg: RunConfig, run_dir: Path, before: bool | None = None) -> tuple[bool, str]:
    """Whether to play the games in a second process, and why. Worth it when there is a second core and
    the games take a large part of each training step (beast's 250 agents: about 60 %); not when
    learning dominates (nav, snake), since this process then learns on one core instead of two.
    ``before`` is what the run chose when it started: a resumed run keeps it (torch's thread count
    changes the last bits of its sums, so a new choice would break exact resume)."""
    setting = cfg.trainer.game_process
    where = {True: "games in a second process", False: "games in this process"}
    if setting is not None:
        return setting, f"{where[setting]} (trainer.game_process={str(setting).lower()})"
    if before is not None:
        return before, f"{where[before]}, as when this run started"
    if (os.cpu_count() or 1) < 2:
        return False, "one CPU core"
    from retro_gamer.autoconfig import measure_step_costs, rules

    share = measure_step_costs(cfg.game, cfg.model, cfg.trainer, run_dir, seconds=0.1).game_share
    wanted = share >= rules()["game_process_share"]
    return wanted, f"{where[wanted]}: they take {share:.0%} of a training step"


def serve() -> None:
    """The child (see :class:`GameProcess`): build the games, then answer calls until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole process group; the parent handles it
    calls, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the game's print() must not mix into the answers
    games: LocalGames | None = None
    while True:
        _await(calls)
        try:
            command, *args = pickle.load(calls)
        except EOFError:
            return
        try:
            if command == "start":
                sys.path[:] = args[0]
                games = LocalGames(*args[1:])
                result: Any = games.dims
            elif command == "step":
                games.step_async(*args)
                result = games.step_wait()
            else:
                result = getattr(games, command)(*args)
            message = ("ok", result)
        except Exception as err:  # noqa: BLE001 - sent to the parent, which reports it
            message = ("error", _portable(err))
        pickle.dump(message, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


SPIN_SECONDS = 0.05


def _await(stream: Any) -> None:
    """Poll ``stream`` for up to :data:`SPIN_SECONDS` before a blocking read. Each side has its own core
    while training, and on a virtual machine waking a sleeping process costs milliseconds a turn."""
    if os.name != "posix":
        return
    fd = stream.fileno()
    end = time.perf_counter() + SPIN_SECONDS
    while not select.select([fd], [], [], 0)[0] and time.perf_counter() < end:
        pass


def _portable(err: Exception) -> dict[str, Any]:
    """What the parent needs to report ``err``: the exception itself when it pickles and is ours,
    the game's frames, and the whole traceback as text."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in game_frames(err)]
    ours = None
    if isinstance(err, RetroGamerError):
        try:
            ours = pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001 - an error class with its own constructor: keep its message
            ours = RetroGamerError(str(err))
    return {"ours": ours, "frames": frames,
            "exception": traceback.format_exception_only(type(err), err)[-1].strip(),
            "traceback": "".join(traceback.format_exception(err))}


def _rebuild(info: dict[str, Any]) -> Exception:
    if info["ours"] is not None:
        return info["ours"]
    if info["frames"]:
        return GameCodeError(info["exception"], [traceback.FrameSummary(f, n, name, line=line) for f, n, name, line in info["frames"]])
    return RuntimeError(f"the games' process failed:\n{info['traceback']}")
