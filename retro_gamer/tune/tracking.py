"""A study in MLflow: one parent run per study, one child run per trial, each seed's training run under its trial.

The parent carries the search space, the best value over trials (a metric whose step is the number of finished
trials), the best parameters (tags ``best.KEY`` and ``best_params.json``) and Optuna's own plots. A trial's run
has its sampled parameters as params, ``optuna.trial`` and ``optuna.state`` tags, each evaluation reported to the
pruner (``report``, step = env steps of the trial) and ``objective``. Its seeds' training runs are the ordinary
runs of :mod:`retro_gamer.tracking.mlflow_run` (learning curves, replays, the policy model), nested one level down.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retro_gamer.tracking import store
from retro_gamer.tune.space import SearchSpace

TRIAL_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


class StudyRuns:
    """The MLflow side of one worker: the study's experiment and parent run in the store at ``uri``."""

    def __init__(self, uri: str, experiment: str):
        from mlflow.entities import Metric

        self.uri, self.experiment = uri, experiment
        self.client = store.open_store(uri)
        self.experiment_id = store.experiment_id(self.client, experiment, uri)
        self._metric = Metric
        self.parent_id = ""

    def create_parent(self, study_name: str, space: SearchSpace, storage: str) -> str:
        """The study's parent run, created by the worker that created the study."""
        from retro_gamer.tune.study import hide_password

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"study {study_name}",
            tags={"optuna.study": study_name, "optuna.storage": hide_password(storage), "game": space.game},
        )
        self.parent_id = run.info.run_id
        self.client.log_text(self.parent_id, space.text, f"search_space/{space.source.name}")
        return self.parent_id

    def join_parent(self, run_id: str) -> None:
        """Use the parent run another worker created: it must be in this store."""
        from mlflow.exceptions import MlflowException

        from retro_gamer.errors import RetroGamerError

        try:
            self.client.get_run(run_id)
        except MlflowException:
            raise RetroGamerError(
                f"the study's MLflow parent run {run_id} is not in {self.uri}: this worker tracks to another store "
                "than the one that created the study. Point every worker at the same MLflow server "
                "(MLFLOW_TRACKING_URI=http://HOST:PORT, see the team-server page)."
            ) from None
        self.parent_id = run_id
        self.client.update_run(run_id, status="RUNNING")

    def start_trial(self, number: int, params: dict[str, str], worker: str) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial {number}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "optuna.trial": str(number),
                "optuna.state": "RUNNING",
                "worker": worker,
            },
        )
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return str(run.info.run_id)

    def seed_tracking(self, trial_run: str) -> dict[str, Any]:
        """How each seed's training run of a trial is tracked: in the study's experiment, under the trial's run."""
        return {"experiment": self.experiment, "tags": {"mlflow.parentRunId": trial_run}}

    def log(self, run_id: str, key: str, value: float, step: int) -> None:
        self.client.log_batch(run_id, metrics=[self._metric(key, float(value), int(time.time() * 1000), step)])

    def end_trial(self, run_id: str, state: str, value: float | None, note: str = "") -> None:
        """End a trial's run as its ``state`` (a key of :data:`TRIAL_STATUS`), and any of its seeds' runs that a
        stopped or dead worker left RUNNING."""
        if value is not None:
            self.log(run_id, "objective", value, 0)
        self.client.set_tag(run_id, "optuna.state", state.upper())
        if note:
            self.client.set_tag(run_id, "optuna.note", note)
        status = TRIAL_STATUS[state]
        for child in self.client.search_runs(
            [self.experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'"
        ):
            self.client.set_terminated(child.info.run_id, "KILLED" if status == "KILLED" else "FAILED")
        self.client.set_terminated(run_id, status)

    def summarise(self, study: Any) -> None:
        """The parent's best value, best parameters and Optuna's plots, as of now. Workers write them concurrently
        (the store's upsert of a tag can collide): a write that fails is tried again, and one that still fails
        waits for the next summary, with a warning, since the trials themselves are safe in the study."""
        from mlflow.exceptions import MlflowException

        for attempt in range(3):
            try:
                self._summarise(study)
                return
            except MlflowException as err:
                if attempt == 2:
                    reason = str(err).splitlines()[0][:160]
                    print(f"warning: the study's summary on MLflow run {self.parent_id} is not updated: {reason}")
                time.sleep(0.2 * (attempt + 1))

    def _summarise(self, study: Any) -> None:
        import optuna
        from mlflow.entities import RunTag

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,))) for state in states}
        step, now = counts["complete"], int(time.time() * 1000)
        metrics = [self._metric(f"trials_{name}", count, now, step) for name, count in counts.items()]
        if not counts["complete"]:
            self.client.log_batch(self.parent_id, metrics=metrics)
            return
        best = study.best_trial
        metrics.append(self._metric("best_value", float(best.value), now, step))
        tags = [RunTag("best_trial", str(best.number))]
        tags += [RunTag(f"best.{key}", str(value)) for key, value in best.params.items()]
        self.client.log_batch(self.parent_id, metrics=metrics, tags=tags)
        summary = {"best_trial": best.number, "best_value": best.value, "best_params": best.params, **counts}
        self.client.log_text(self.parent_id, json.dumps(summary, indent=2) + "\n", "best_params.json")
        self._log_plots(study, counts["complete"])

    def _log_plots(self, study: Any, complete: int) -> None:
        """Optuna's optimisation history, and parameter importances once two trials differ."""
        import matplotlib

        matplotlib.use("Agg")
        import warnings

        import matplotlib.pyplot as plt
        import optuna.visualization.matplotlib as plots
        from optuna.exceptions import ExperimentalWarning

        drawings: list[tuple[str, Callable[[Any], Any]]] = [
            ("optimization_history.png", plots.plot_optimization_history)
        ]
        if complete >= 2:
            drawings.append(("param_importances.png", plots.plot_param_importances))
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # importances of trials too few to tell apart: drawn equal
            for name, draw in drawings:
                try:
                    axes = draw(study)
                except (RuntimeError, ValueError, ZeroDivisionError):  # importances of trials that do not vary
                    continue
                path = Path(folder) / name
                figure = axes.get_figure(root=True)
                figure.tight_layout()
                figure.savefig(path, dpi=100)
                plt.close(figure)
                self.client.log_artifact(self.parent_id, str(path))

    def end_parent_if_idle(self, study: Any) -> None:
        """FINISHED once no trial of the study is running (the last worker to stop ends it)."""
        import optuna

        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.client.set_terminated(self.parent_id, "FINISHED")
