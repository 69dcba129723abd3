"""One trial: train its configuration once per seed, judge each trained policy by greedy play, average.

Each training is an ordinary run directory (``tune/STUDY/trial_NNNN/seed_S``) composed like
``python -m retro_gamer.train +game=GAME`` with the space's overrides and the trial's values, so any trial can be
inspected, replayed or resumed with the usual commands. While it trains, :class:`TrialReporter` evaluates the
latest checkpoint each time the run passes a multiple of ``report_every`` env steps and reports it to Optuna at
that step (offset by the seeds already trained), so every trial reports at the same steps and the pruner
compares like with like.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retro_gamer.dqn.callbacks import Callback, Window
from retro_gamer.errors import RetroGamerError
from retro_gamer.tune.space import SearchSpace
from retro_gamer.tune.study import HEARTBEAT, HEARTBEAT_EVERY_S

if TYPE_CHECKING:
    from retro_gamer.dqn.trainer import DQNTrainer


@dataclass
class Outcome:
    """How a trial ended: ``complete`` (with ``value``), ``pruned``, or ``stopped`` (Ctrl+C or SIGTERM)."""

    state: str
    value: float | None = None
    seed_values: list[float] = field(default_factory=list)


def judge(space: SearchSpace, run_dir: Path, checkpoint: Path | None = None) -> float:
    """The space's metric for the run's policy (its latest checkpoint unless one is given): greedy games from
    the space's evaluation seed, the same games for every trial."""
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy

    o = space.objective
    policy = TrainedPolicy(run_dir, checkpoint=checkpoint)
    result = evaluate(
        policy.config, policy.network, episodes=o.episodes, seed=o.eval_seed, base_dir=policy.run_dir, parallel=10
    )
    if o.metric == "mean_return":
        return float(result["mean_return"])
    key = o.metric.removeprefix("final_state.")
    if key not in result["final_state"]:
        raise RetroGamerError(
            f"{space.source}: objective.metric {o.metric} is not a number in the game's state at the end of a game "
            f"(it has: {', '.join(result['final_state']) or 'no numbers'}); use mean_return or final_state.KEY."
        )
    return float(result["final_state"][key])


class TrialReporter(Callback):
    """Reports evaluations to the trial at fixed steps, stops training when the pruner says so, and keeps the
    trial's heartbeat fresh so no other worker takes it for an orphan."""

    def __init__(self, trial: Any, space: SearchSpace, offset: int, log: Callable[[str, float, int], None]):
        self.trial, self.space, self.offset, self._log = trial, space, offset, log
        self.next_report = space.report_every
        self.reported_at, self.last_value = -1, 0.0  # env steps and value of the last evaluation reported
        self.pruned = False
        self._beat = 0.0

    def on_train_start(self, trainer: DQNTrainer) -> None:
        self.beat()

    def on_episode_end(self, trainer: DQNTrainer, episode: int, episode_return: float, length: int) -> None:
        if time.monotonic() - self._beat >= HEARTBEAT_EVERY_S:
            self.beat()

    def on_checkpoint(self, trainer: DQNTrainer, path: Path, window: Window) -> None:
        if window.env_steps < self.next_report or self.pruned:
            return
        every = self.space.report_every
        passed = window.env_steps // every * every
        self.report(judge(self.space, trainer.run_dir, path), passed)
        self.next_report = passed + every
        if self.trial.should_prune():
            self.pruned = True
            trainer.request_stop("pruned")

    def report(self, value: float, env_steps: int) -> None:
        step = self.offset + env_steps
        self.trial.report(value, step)
        self._log("report", value, step)
        self.reported_at, self.last_value = env_steps, value
        self.beat()
        print(f"  trial {self.trial.number}: {value:.4g} at {step:,} env steps", flush=True)

    def beat(self) -> None:
        self.trial.set_user_attr(HEARTBEAT, time.time())
        self._beat = time.monotonic()


def run_trial(
    space: SearchSpace,
    trial: Any,
    params: dict[str, str],
    folder: Path,
    tracking: dict[str, Any],
    log: Callable[[str, float, int], None],
    stopping: Callable[[], bool],
) -> Outcome:
    """Train and judge the trial once per seed. ``tracking``: the experiment and tags (the trial's MLflow run as
    parent) each seed's run is tracked with, or ``{}`` for none; ``stopping``: whether the worker was asked to
    stop (a signal that came while no training ran)."""
    from retro_gamer.config.compose import compose_run
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    outcome = Outcome("complete")
    for i, seed in enumerate(space.objective.seeds):
        run_dir = folder / f"trial_{trial.number:04d}" / f"seed_{seed}"
        if run_dir.exists():
            raise RetroGamerError(
                f"{run_dir} exists already, from an earlier study of the same name: trial {trial.number} of this "
                f"study would resume it. Move or delete {folder}, or use another --study name."
            )
        overrides = [*space.overrides, *(f"{k}={v}" for k, v in params.items()), f"trainer.seed={seed}"]
        cfg, source, _ = compose_run(space.game, overrides)
        if tracking:
            tags = {**cfg.tracking.tags, **tracking["tags"], "seed": str(seed)}
            cfg = replace(cfg, tracking=replace(cfg.tracking, experiment=tracking["experiment"], tags=tags))
        else:
            cfg = replace(cfg, tracking=replace(cfg.tracking, enabled=False))
        cfg = prepare_run(cfg, run_dir, source)
        reporter = TrialReporter(trial, space, i * space.total_env_steps, log)
        summary = train_run(run_dir, cfg, callbacks=[reporter], progress=False, tracking_report=False)
        if summary["status"] == "interrupted" or stopping():
            return Outcome("stopped", seed_values=outcome.seed_values)
        if reporter.pruned:
            return Outcome("pruned", seed_values=outcome.seed_values)
        if reporter.reported_at == space.total_env_steps:  # the last checkpoint was judged already
            value = reporter.last_value
        else:
            value = judge(space, run_dir)
            reporter.report(value, space.total_env_steps)
        outcome.seed_values.append(value)
        log("seed_value", value, seed)
        if i + 1 < len(space.objective.seeds) and trial.should_prune():
            return Outcome("pruned", seed_values=outcome.seed_values)
    outcome.value = statistics.fmean(outcome.seed_values)
    return outcome
