"""When the user's own game code fails, show *their* code: file, line and source of each of the
game's frames and the exception, with retro-gamer's, retro's and Python's own frames left out.

A failure with no game frame in its traceback is retro-gamer's own bug and keeps its full traceback.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

import retro

_OURS = Path(__file__).resolve().parents[1]  # the retro_gamer package
_RETRO = Path(retro.__file__).resolve().parent
_GAMES = (_OURS / "examples", _RETRO / "examples")  # shipped games count as games
_LIBRARIES = tuple(
    {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
) + (_OURS, _RETRO)


def is_game_file(filename: str) -> bool:
    """True for a game's source file: not retro-gamer, not retro, not the standard library or an installed package."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = Path(filename).resolve()
    if any(path.is_relative_to(folder) for folder in _GAMES):
        return True
    return not any(path.is_relative_to(folder) for folder in _LIBRARIES)


class GameCodeError(Exception):
    """The game's code failed in another process (the games' process, :mod:`retro_gamer.env.game_batch`):
    its frames and exception, as text, since a traceback cannot cross a process boundary."""

    def __init__(self, exception: str, frames: list[traceback.FrameSummary]):
        super().__init__(exception)
        self.exception = exception
        self.frames = frames


def game_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback that are in the game's own code."""
    if isinstance(error, GameCodeError):
        return error.frames
    return [f for f in traceback.extract_tb(error.__traceback__) if is_game_file(f.filename)]


def exception_line(error: BaseException) -> str:
    """The exception's last line, as Python prints it; a game's ``exit()`` also says what to do instead."""
    line = traceback.format_exception_only(type(error), error)[-1].strip()
    if isinstance(error, SystemExit):
        line += " (the game called exit(), which would end retro-gamer with it; end an episode with game.end())"
    return line


def game_fault_message(error: BaseException, doing: str) -> str | None:
    """The report for ``error`` if the game's code raised it (or failed to compile), else ``None``.

    ``doing`` says what was going on ("training runs/snake"); the report ends by saying what to do.
    """
    if isinstance(error, SyntaxError) and error.filename and is_game_file(error.filename):
        lines = [f'  File "{error.filename}", line {error.lineno}']
        if error.text:
            lines.append(f"    {error.text.strip()}")
    else:
        frames = game_frames(error)
        if not frames:
            return None
        lines = [
            f'  File "{f.filename}", line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else "")
            for f in frames
        ]
    exception = error.exception if isinstance(error, GameCodeError) else exception_line(error)
    return "\n".join(
        [
            f"the game's code failed while {doing}:",
            *lines,
            exception,
            "Fix the game and run the same command again; files saved before this are intact.",
        ]
    )
