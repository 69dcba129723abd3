"""A helper Python process that answers calls: what the games' process and the learner process share.

The child is a fresh interpreter (``python -c``) with this process's ``sys.path``, so it imports the
game the same way and never re-runs the caller's script. It builds one object, ``build(*args)``, and then
runs that object's methods as they are called: a call names the method itself (``Learner.restore``), so an
editor and a type checker follow it and check its arguments (:meth:`ChildProcess.call`). Calls and answers
are pickles over its stdin/stdout (a method pickles as its module and name); prints in the child (a game's
own) go to stderr. It ignores Ctrl+C and a cluster's :func:`preemption_signal` (the trainer decides when to
stop) and ends when its stdin closes. An exception in the child comes back here: a retro-gamer error as itself,
the game's own failure as :class:`~retro_gamer.games.faults.GameCodeError` with its frames, anything else with
the child's traceback.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from retro_gamer.errors import HelperDied, RetroGamerError
from retro_gamer.games.faults import GameCodeError, exception_line, game_frames

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

CHILD = "from retro_gamer.runtime.child_process import serve; serve()"
PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's setting: the name of its signal without SIG


def preemption_signal() -> signal.Signals | None:
    """The signal a cluster job gets shortly before it is stopped (its time limit, or preempted): SIGUSR2, which
    submitit asks SLURM for (``--signal=USR2@...``) and handles by resubmitting the job, or the one
    ``SUBMITIT_PREEMPT_SIGNAL`` names. SLURM sends it to every process of the job, helpers included: the trainer
    saves and stops on it, the helpers ignore it. ``None`` where the system has no such signal (Windows)."""
    found = getattr(signal, "SIG" + os.environ.get(PREEMPT_SIGNAL_ENV, "USR2"), None)
    return found if isinstance(found, signal.Signals) else None


class ChildProcess(Generic[T]):
    """The calling side: start a child that builds a ``T`` with ``build(*args)``, call its methods there."""

    role = "the child process"  # how messages name it

    def __init__(self, build: Callable[..., T], *args: Any) -> None:
        # the class's name ends the command line, so that ps and top tell the helpers apart
        command = [sys.executable, "-c", CHILD, type(self).__name__]
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }  # one core each
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._process.stdin is not None and self._process.stdout is not None  # both pipes, as asked
        self._calls, self._answers = self._process.stdin, self._process.stdout
        try:
            self._send(list(sys.path))  # first, so that what the next message names imports as it does here
            self._send((build, args))
            self._answer()
        except BaseException:
            self._end()
            raise

    def call(self, method: Callable[Concatenate[T, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``method(the child's object, *args, **kwargs)``, run in the child; its answer."""
        self._post(method, *args, **kwargs)
        answer: R = self._answer()
        return answer

    def _post(self, method: Callable[Concatenate[T, P], Any], *args: P.args, **kwargs: P.kwargs) -> None:
        """Send a call without waiting for its answer (read it later with :meth:`_answer`, in order)."""
        self._send((method, args, kwargs))

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def _send(self, message: object) -> None:
        try:
            pickle.dump(message, self._calls, protocol=pickle.HIGHEST_PROTOCOL)
            self._calls.flush()
        except (BrokenPipeError, OSError):
            self._answer()  # the child is gone: say why
            raise

    def _answer(self) -> Any:
        _await(self._answers)
        try:
            kind, value = pickle.load(self._answers)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise HelperDied(self._obituary()) from None
        if kind == "error":
            raise _rebuild(value, self.role)
        return value

    def _obituary(self) -> str:
        code = self._process.wait()
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name}" + (
                " (the system may have run out of memory)" if -code == signal.SIGKILL else ""
            )
        else:
            how = f"ended with exit code {code}"
        return (
            f"{self.role} (pid {self._process.pid}) {how}; its messages, if any, are above. Training stopped; what it "
            "saved before is intact: run the same command again to resume from the last checkpoint."
        )

    def _end(self) -> None:
        """Let the child finish (its stdin closes), or stop it if it does not."""
        if self.alive:
            try:
                self._calls.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for stream in (self._calls, self._answers):
            with contextlib.suppress(OSError):
                stream.close()


def serve() -> None:
    """The child's side (see the module docstring): ``sys.path``, then the object to build, then calls until
    stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole process group; the parent handles it
    preempted = preemption_signal()
    if preempted is not None:  # so does a scheduler's signal
        signal.signal(preempted, signal.SIG_IGN)
    calls, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the game's print() must not mix into the answers
    try:
        sys.path[:] = pickle.load(calls)
    except EOFError:
        return
    target: Any = None
    while True:
        _await(calls)
        try:
            message = pickle.load(calls)
        except EOFError:
            return
        try:
            if target is None:
                build, args = message
                target, result = build(*args), None
            else:
                method, args, kwargs = message
                result = method(target, *args, **kwargs)
            answer = ("ok", result)
        except (Exception, SystemExit) as err:  # noqa: BLE001 - sent to the parent, which reports it (a game's exit() too)
            answer = ("error", _portable(err))
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
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


def _portable(err: BaseException) -> dict[str, Any]:
    """What the parent needs to report ``err``: the exception itself when it pickles and is ours,
    the game's frames, and the whole traceback as text."""
    frames = [(f.filename, f.lineno, f.name, f.line) for f in game_frames(err)]
    ours = None
    if isinstance(err, RetroGamerError):
        try:
            ours = pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001 - an error class with its own constructor: keep its message
            ours = RetroGamerError(str(err))
    return {
        "ours": ours,
        "frames": frames,
        "exception": exception_line(err),
        "traceback": "".join(traceback.format_exception(err)),
    }


def _rebuild(info: dict[str, Any], role: str) -> Exception:
    if info["ours"] is not None:
        return info["ours"]
    if info["frames"]:
        return GameCodeError(
            info["exception"], [traceback.FrameSummary(f, n, name, line=line) for f, n, name, line in info["frames"]]
        )
    return RuntimeError(f"{role} failed:\n{info['traceback']}")
