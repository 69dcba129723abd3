"""One writer per run directory at a time.

Two trainers on one run directory would overwrite each other's checkpoints and interleave
``training.log``. The guard is an OS file lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows)
on ``RUN_DIR/.lock``: the kernel releases it when the holder exits, however it exits, so a crash
never leaves a stale lock behind the way a pid file would. The file also says who holds it, so the
refusal can name the holder.

The lock is re-entrant within one process: the faces take it around the whole job, and the
library functions they call (``prepare_run``, ``train_run``) take it again to protect direct callers.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from retro_gamer.errors import RetroGamerError

LOCK_FILE = ".lock"
_held: dict[Path, list[Any]] = {}  # resolved run dir -> [open lock file, depth]


class RunBusyError(RetroGamerError):
    """Another process is working in the run directory."""


def _try_lock(handle: IO[str]) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _holder(path: Path) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        stop = f"; stop it with `kill -INT {info['pid']}`" if info["host"] == socket.gethostname() else ""
        return f"process {info['pid']} on {info['host']} (`{info['command']}`, since {started}{stop})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"


@contextmanager
def run_lock(run_dir: Path, purpose: str = "training") -> Iterator[None]:
    """Hold ``run_dir`` for this process; a second holder is refused at once with who holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    path = run_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open as long as the lock
    if not _try_lock(handle):
        handle.close()
        raise RunBusyError(
            f"{run_dir} is in use by {_holder(path)}. Only one process may train or change a run "
            "directory at a time; wait for it to finish, or train in another run directory."
        )
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.time(),
                "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:300],
                "purpose": purpose,
            }
        )
    )
    handle.flush()
    _held[key] = [handle, 1]
    try:
        yield
    finally:
        del _held[key]
        try:
            handle.seek(0)
            handle.truncate()  # an idle run directory's lock file is empty, so its content never differs
        except OSError:
            pass
        handle.close()  # closing releases the lock
