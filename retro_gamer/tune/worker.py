"""``retro-gamer tune``: one worker of a study. Start as many as you like, on as many machines, with the same
space, study name and storage; each runs ``trials`` trials and stops.

A worker that is asked to stop (SIGTERM, Ctrl+C, a cluster's preemption signal; the trainer's
:class:`~retro_gamer.dqn.trainer.StopRequest` listens around the whole worker, and the trainer's own while it
trains) stops its trial at the next episode end with everything saved, ends the trial's MLflow run KILLED, marks
the trial failed in the study, and exits with status 0: the study resumes when a worker is started again (a
stopped trial is not resumed; the sampler asks anew). A preemption signal then goes on to the scheduler's handler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retro_gamer.tune.objective import Outcome, run_trial
from retro_gamer.tune.space import SearchSpace, read_space
from retro_gamer.tune.study import (
    HEARTBEAT,
    PARENT_RUN,
    STALE_AFTER_S,
    TRACKING_URI,
    WORKER,
    Worker,
    default_storage,
    hide_password,
    mark_orphans_failed,
    open_study,
    storage_for,
    wait_for_attr,
)
from retro_gamer.tune.tracking import StudyRuns


def tune(
    space_name: str,
    study_name: str,
    trials: int,
    storage: str | None = None,
    overrides: list[str] | None = None,
    project: Path | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> int:
    """Run ``trials`` trials of study ``study_name``; returns the exit status."""
    import optuna

    from retro_gamer.config.compose import compose_run
    from retro_gamer.tracking import store

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this worker says what happens, once
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # … and where the study's runs are
    space = read_space(space_name, overrides or [])
    project = store.project_root(Path.cwd()) if project is None else project
    storage = storage or default_storage(project)
    study, created = open_study(study_name, storage_for(storage), space)
    cfg, _, _ = compose_run(space.game, list(space.overrides))  # the overrides' tracking settings, checked
    runs = None
    if cfg.tracking.enabled:
        uri = store.resolve_uri(cfg.tracking.uri, project)
        runs = StudyRuns(uri, cfg.tracking.experiment or f"tune-{study_name}")
        if created:
            study.set_user_attr(PARENT_RUN, runs.create_parent(study_name, space, storage))
            study.set_user_attr(TRACKING_URI, uri)
        else:
            runs.join_parent(wait_for_attr(study, PARENT_RUN, 120.0))
    print(
        f"{'Created' if created else 'Joined'} study {study_name!r} in {hide_password(storage)} "
        f"({len(study.trials)} trials so far); this worker runs {trials}."
    )
    for line in reap_orphans(study, runs, stale_after_s):
        print(line)
    from retro_gamer.dqn.trainer import StopRequest

    worker = Worker.this_process()
    folder = project / "tune" / study_name
    done = 0
    with StopRequest() as stop:  # a signal between trainings; one while training is the trainer's own
        try:
            while done < trials and not stop.requested:
                outcome = one_trial(study, space, runs, folder, worker, lambda: stop.requested)
                if outcome.state == "stopped":  # the signal came while training, which took it
                    stop.request()
                else:
                    done += 1
        finally:
            if runs is not None:
                runs.summarise(study)
                runs.end_parent_if_idle(study)
    print(ending(study, runs, done, stop.requested))
    stop.pass_on()  # a preemption signal goes on to the scheduler's handler (submitit's resubmits the job)
    return 0


def one_trial(
    study: Any, space: SearchSpace, runs: StudyRuns | None, folder: Path, worker: Worker, stopping: Callable[[], bool]
) -> Outcome:
    """Ask the study for a trial, run it, tell the study and MLflow how it ended."""
    from optuna.trial import TrialState

    PRUNED, FAIL = TrialState.PRUNED, TrialState.FAIL
    started = time.perf_counter()
    trial = study.ask()
    outcome, run_id = Outcome("failed"), ""  # unless run_trial returns
    try:
        trial.set_user_attr(WORKER, worker.as_attr())
        trial.set_user_attr(HEARTBEAT, time.time())
        params = space.sample(trial)
        print(f"trial {trial.number}: {' '.join(f'{k}={v}' for k, v in params.items())}", flush=True)
        if runs is not None:
            run_id = runs.start_trial(trial.number, params, f"{worker.host}:{worker.pid}")
            trial.set_user_attr("mlflow_run_id", run_id)
        tracking = runs.seed_tracking(run_id) if runs else {}
        log = (lambda key, value, step: runs.log(run_id, key, value, step)) if runs else (lambda *_: None)
        outcome = run_trial(space, trial, params, folder, tracking, log, stopping)
    except KeyboardInterrupt:  # a second signal: stopped at once
        outcome = Outcome("stopped")
        raise
    finally:
        if outcome.state == "complete":
            study.tell(trial, outcome.value)
        else:
            study.tell(trial, state=PRUNED if outcome.state == "pruned" else FAIL)
        if runs is not None and run_id:
            runs.end_trial(run_id, outcome.state, outcome.value)
            runs.summarise(study)
    value = "" if outcome.value is None else f" {outcome.value:.4g}"
    print(f"trial {trial.number}: {outcome.state}{value} in {time.perf_counter() - started:.0f} s", flush=True)
    return outcome


def reap_orphans(study: Any, runs: StudyRuns | None, stale_after_s: float) -> list[str]:
    """Mark failed the trials whose workers are gone, and end their MLflow runs FAILED (see study.py)."""
    lines = []
    for orphan in mark_orphans_failed(study, stale_after_s):
        if runs is not None and orphan.run_id:
            runs.end_trial(orphan.run_id, "failed", None, orphan.reason)
        lines.append(f"trial {orphan.number}: marked failed: {orphan.reason}")
    return lines


def ending(study: Any, runs: StudyRuns | None, done: int, stopped: bool) -> str:
    lines = [
        f"Stopped after {done} trials; start the worker again to go on with the study."
        if stopped
        else f"Ran {done} trials."
    ]
    try:
        best = study.best_trial
        lines.append(
            f"Best so far: trial {best.number}, {best.value:.4g}: "
            + " ".join(f"{k}={v}" for k, v in best.params.items())
        )
    except ValueError:  # no trial has completed yet
        pass
    if runs is not None:
        lines.append(f"MLflow: {store_url(runs)}")
    return "\n".join(lines)


def store_url(runs: StudyRuns) -> str:
    from retro_gamer.tracking import store

    return f"{store.runs_url(runs.uri, runs.experiment_id, runs.parent_id)} (browse: {store.ui_command(runs.uri)})"
