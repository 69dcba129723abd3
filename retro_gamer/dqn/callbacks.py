"""How training reports: a callback seam, the run's own log files, and the progress display.

The trainer calls these hooks and knows nothing else about reporting, so MLflow tracking can
plug in later as one more callback without touching the training loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retro_gamer.files import atomic_write_bytes

if TYPE_CHECKING:
    from retro_gamer.dqn.trainer import DQNTrainer

LOG_FILE = "training.log"
METRICS_FILE = "metrics.json"


@dataclass
class Window:
    """Statistics of the episodes since the previous checkpoint."""

    first_episode: int
    last_episode: int
    mean_return: float
    mean_length: float
    epsilon: float
    loss: float | None
    env_steps: int
    steps_per_s: float

    def line(self, warmup_share: float = 0.0) -> str:
        """``warmup_share``: the part of this window's env steps played in warm-up, random play without
        learning, which runs many times faster than training: the speed says so rather than pass for it."""
        loss = "-" if self.loss is None else f"{self.loss:.4g}"
        warmup = (
            ""
            if warmup_share <= 0
            else " (warm-up: random play, no learning yet)"
            if warmup_share >= 1
            else f" ({warmup_share:.0%} of them warm-up: random play, no learning)"
        )
        return (
            f"episodes {self.first_episode}-{self.last_episode} | mean return {self.mean_return:.2f} | "
            f"mean length {self.mean_length:.1f} | epsilon {self.epsilon:.3f} | loss {loss} | "
            f"{self.steps_per_s:,.0f} env steps/s{warmup}"
        )


class WarmupShare:
    """How much of each checkpoint window was warm-up (env steps below ``trainer.warmup_steps``, the same rule as
    the epsilon schedule's), from the env steps at the previous checkpoint this session."""

    def __init__(self) -> None:
        self.since = 0

    def start(self, trainer: DQNTrainer) -> None:
        self.since = trainer.env_steps

    def of(self, trainer: DQNTrainer, window: Window) -> float:
        warmup = trainer.cfg.trainer.warmup_steps
        share = max(0, min(window.env_steps, warmup) - self.since) / max(1, window.env_steps - self.since)
        self.since = window.env_steps
        return share


def stop_rule(trainer: DQNTrainer) -> str:
    """What will end this session, in words: the time limit and step budget as well as the episode count, since
    whichever comes first stops the run and a bare "episode 0/20000" hides that a time limit will."""
    t = trainer.cfg.trainer
    limits = [f"{t.time_limit:g} min"] if t.time_limit is not None else []
    steps = getattr(t, "total_env_steps", None)
    if steps is not None:
        limits.append(f"{steps:,} env steps")
    limits.append(f"{t.episodes:,} episodes")
    rule = limits[0] if len(limits) == 1 else f"{', '.join(limits[:-1])} or {limits[-1]}, whichever comes first"
    now = f"episode {trainer.episode:,}" + (f", {trainer.env_steps:,} env steps" if steps is not None else "")
    return f"until {rule} (now at {now})"


class Callback:
    """Override what you need. Hooks run in the training process, between episodes."""

    def on_train_start(self, trainer: DQNTrainer) -> None: ...

    def on_episode_end(self, trainer: DQNTrainer, episode: int, episode_return: float, length: int) -> None: ...

    def on_checkpoint(self, trainer: DQNTrainer, path: Path, window: Window) -> None: ...

    def on_train_end(self, trainer: DQNTrainer, summary: dict[str, Any]) -> None:
        """Always called, also after an error: ``summary["status"]`` is finished, interrupted or failed."""


class RunLog(Callback):
    """``training.log``: one line per checkpoint. ``metrics.json``: the run's totals, rewritten at each checkpoint."""

    def __init__(self, run_dir: Path):
        self.log_path = Path(run_dir) / LOG_FILE
        self.metrics_path = Path(run_dir) / METRICS_FILE
        self._warmup = WarmupShare()

    def on_train_start(self, trainer: DQNTrainer) -> None:
        self._warmup.start(trainer)
        self._append(
            f"# {time.strftime('%Y-%m-%d %H:%M:%S')} training {trainer.resume_note or 'started'} {stop_rule(trainer)}"
        )

    def on_checkpoint(self, trainer: DQNTrainer, path: Path, window: Window) -> None:
        self._append(f"{window.line(self._warmup.of(trainer, window))} | {path.name}")
        self._write_metrics(trainer.summary())

    def on_train_end(self, trainer: DQNTrainer, summary: dict[str, Any]) -> None:
        """The totals of a run that stopped with everything saved; after a failure, metrics.json keeps those of
        the last checkpoint, so it describes only what was saved."""
        if summary["status"] != "failed":
            self._write_metrics(summary)

    def _append(self, line: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _write_metrics(self, summary: dict[str, Any]) -> None:
        atomic_write_bytes(self.metrics_path, (json.dumps(summary, indent=2) + "\n").encode())


def bar_limit(trainer: DQNTrainer) -> tuple[str, int, Callable[[DQNTrainer], int]]:
    """What the live bar counts, its total, and how far the run is: the step budget when there is one (over all of
    the run's sessions), else the time limit (this session's seconds), else episodes."""
    t = trainer.cfg.trainer
    if t.total_env_steps is not None:
        return "env steps", t.total_env_steps, lambda tr: tr.env_steps
    if t.time_limit is not None:
        start = time.perf_counter()
        return "seconds", round(60 * t.time_limit), lambda tr: int(time.perf_counter() - start)
    return "episodes", t.episodes, lambda tr: tr.episode


class ConsoleProgress(Callback):
    """A live bar (the run's limit, mean return, epsilon, env steps/s) on a terminal; plain lines otherwise."""

    def __init__(self, stream: Any = None, refresh_s: float = 0.25):
        self.stream = stream or sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.refresh_s = refresh_s
        self._next = 0.0
        self._progress: Any = None
        self._warmup = WarmupShare()

    def on_train_start(self, trainer: DQNTrainer) -> None:
        self._warmup.start(trainer)
        total = trainer.cfg.trainer.episodes
        if trainer.episode >= total:
            print(
                f"{trainer.run_dir} already has {trainer.episode} episodes (trainer.episodes={total}): nothing to do. "
                "Raise trainer.episodes (or --episodes) to train further.",
                file=self.stream,
                flush=True,
            )
            return
        print(
            f"Training {trainer.cfg.game.name or trainer.cfg.game.factory} in {trainer.run_dir} on {trainer.device} "
            f"{stop_rule(trainer)}; {trainer.placement.reason}",
            file=self.stream,
            flush=True,
        )
        if trainer.resume_note:
            print(trainer.resume_note[0].upper() + trainer.resume_note[1:] + ".", file=self.stream, flush=True)
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            unit, limit, self._done = bar_limit(trainer)
            self._progress = Progress(
                TextColumn(unit),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._progress.add_task("train", total=limit, completed=self._done(trainer), stats="")
            self._progress.start()

    def on_episode_end(self, trainer: DQNTrainer, episode: int, episode_return: float, length: int) -> None:
        if self._progress is None or time.perf_counter() < self._next:
            return
        self._next = time.perf_counter() + self.refresh_s
        warmup = "  warm-up: random play" if trainer.env_steps < trainer.cfg.trainer.warmup_steps else ""
        stats = (
            f"return {trainer.recent_mean_return():.1f}  eps {trainer.epsilon():.3f}  "
            f"{trainer.steps_per_s():,.0f} steps/s{warmup}"
        )
        self._progress.update(self._task, completed=self._done(trainer), stats=f"episode {episode:,}  {stats}")

    def on_checkpoint(self, trainer: DQNTrainer, path: Path, window: Window) -> None:
        line = window.line(self._warmup.of(trainer, window))
        if self._progress is not None:
            self._progress.console.print(line, highlight=False)
        else:
            print(line, file=self.stream, flush=True)

    def on_train_end(self, trainer: DQNTrainer, summary: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._done(trainer))
            self._progress.stop()
