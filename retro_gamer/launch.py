"""Train a prepared run directory as every entry point does (``retro-gamer train``, ``python -m retro_gamer.train``,
the DVC pipeline's stages): the trainer with the run's own log, the console and MLflow as callbacks, and what the
entry points print when training stops or fails.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from retro_gamer.config.schema import RunConfig, read_config
from retro_gamer.dqn.callbacks import METRICS_FILE, Callback, ConsoleProgress, RunLog
from retro_gamer.run.directory import nothing_to_do, progress_so_far
from retro_gamer.run.lock import run_lock


def train_run(
    run_dir: Path,
    cfg: RunConfig | None = None,
    callbacks: list[Callback] | None = None,
    progress: bool = True,
    tracking_report: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir``; ``cfg`` defaults to its ``config.toml``. A run that has trained all
    its budget allows changes nothing on disk or in tracking: its saved totals come back, ``stopped_by`` saying so.
    ``progress``: the live bar; ``tracking_report``: where the MLflow run is, printed at the end (a caller that
    trains many runs says so once itself), while warnings about the store are printed either way."""
    from retro_gamer.dqn.trainer import DQNTrainer  # torch is imported only when training

    with run_lock(run_dir):
        cfg = cfg or read_config(run_dir)
        done = nothing_to_do(run_dir, cfg)
        if done is not None:
            print(done, flush=True)
            return {**saved_metrics(run_dir), "stopped_by": "nothing_to_do", "status": "finished"}
        hooks: list[Callback] = [RunLog(run_dir)]
        if progress:
            hooks.append(ConsoleProgress())
        if cfg.tracking.enabled:
            from retro_gamer.tracking.mlflow_run import MlflowTracking

            hooks.append(MlflowTracking(cfg, run_dir, stream=None if tracking_report else io.StringIO()))
        trainer = DQNTrainer(cfg, run_dir, hooks + list(callbacks or []))
        return trainer.train()


def saved_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json`` (its totals), or what its counters say where that file is missing or damaged."""
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        episodes, env_steps = progress_so_far(run_dir)
        return {"episodes": episodes, "env_steps": env_steps, "env_steps_per_s": 0.0, "mean_return": None}


def stopped_at_once_message(resume_command: str) -> str:
    """A second Ctrl+C: one line, no traceback."""
    return f"Stopped at once; the files saved before are intact. Resume with: {resume_command}"


def finish_message(summary: dict[str, Any], run_dir: Path, resume_command: str) -> str:
    """What both entry points print when training stops."""
    if summary["stopped_by"] == "nothing_to_do":
        return f"Nothing trained; {run_dir} is as it was."
    lines = []
    if summary["stopped_by"] == "interrupted":
        lines.append(f"Stopped at episode {summary['episodes']}; checkpoint saved. Resume with: {resume_command}")
    lines.append(
        f"Trained {summary['episodes']} episodes ({summary['env_steps']:,} env steps, "
        f"{summary['env_steps_per_s']:,.0f}/s). Results in {run_dir}"
    )
    return "\n".join(lines)


def explain_failure(error: BaseException, doing: str) -> str | None:
    """The one-paragraph answer for a failure that is not retro-gamer's bug: the game's own code
    raised or called ``exit()`` (its frames only), or the file system refused. ``None`` means a bug: show the
    traceback (or, for a ``SystemExit`` of our own, let it exit)."""
    from retro_gamer.games.faults import game_fault_message

    message = game_fault_message(error, doing)
    if message is None and isinstance(error, OSError):
        from retro_gamer.files import describe_os_error

        message = describe_os_error(error)
    return message
