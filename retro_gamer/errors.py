"""The one exception type users see: a message that says what, where and how to fix."""

from __future__ import annotations


class RetroGamerError(Exception):
    """A user-facing problem. Entry points print ``str(error)`` and exit 2, never a traceback."""

    exit_code = 2


class ConfigError(RetroGamerError):
    """A configuration file or override is wrong; the message names the file and the key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        lines = [f"{source}: {len(self.problems)} problem(s):"] if len(self.problems) > 1 else []
        if len(self.problems) == 1:
            lines.append(f"{source}: {self.problems[0]}")
        else:
            lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class IncompatibleRunError(RetroGamerError):
    """A run directory's checkpoints cannot be resumed with the new configuration."""


class SaveError(RetroGamerError):
    """The disk refused a write (full, read-only, too large); what was saved before is intact."""

    exit_code = 1


class HelperDied(RetroGamerError):
    """The games' or the learner process ended without being asked to (killed, out of memory); the run's
    files saved before are intact."""

    exit_code = 1


class GameFault(RetroGamerError):
    """The game broke a rule training depends on (a reward that is not a finite number, a board that
    changed size); the message names the key, the value and the turn."""
