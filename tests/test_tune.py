"""``retro-gamer tune``: search spaces in Hydra's sweep grammar, a study shared by workers (SQLite, and a real
PostgreSQL with a real MLflow server in front of it), trials as MLflow runs under one parent, orphaned trials, and
a worker stopped by SIGTERM or killed by SIGKILL. Budgets are tiny: a trial takes a few seconds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.tune.space import override_value, parse_param, read_space
from retro_gamer.tune.study import HEARTBEAT, PARENT_RUN, WORKER, Worker, mark_orphans_failed, open_study

CLI = str(Path(sys.executable).parent / "retro-gamer")
SETTINGS = [o for o in TINY if not o.startswith(("tracking.", "model.hidden"))] + [
    "trainer.checkpoint_every=4",
    "game.max_turns=40",
]


def write_space(folder: Path, steps: int = 1200, **changes) -> Path:
    space = {
        "game": "snake",
        "overrides": [*SETTINGS, f"trainer.total_env_steps={steps}"],
        "params": {
            "trainer.lr": "tag(log, interval(1e-4, 1e-2))",
            "trainer.n_step": "range(1, 4)",
            "model.hidden": "choice([16], [32])",
        },
        "objective": {"metric": "mean_return", "seeds": [0], "episodes": 3, "report_every": steps // 2},
        "pruner": {"kind": "none"},
        **changes,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'tuning'\n")  # the project root: tune/ and mlruns/
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def worker(folder: Path, study: str, trials: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``retro-gamer tune`` as a user starts it, in ``folder``, in its own process group."""
    return subprocess.Popen(
        [CLI, "tune", "space.yaml", "--study", study, "--trials", str(trials), *extra],
        cwd=folder,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(condition, what: str, timeout: float = 180.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the worker ended before {what}:\n{process.stdout.read()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def checkpointed(folder: Path, study: str, trials: int = 1) -> bool:
    """The worker in ``folder`` is training its ``trials``-th trial and has saved a checkpoint of it."""
    made = sorted((folder / "tune" / study).glob("trial_*"))
    return len(made) >= trials and any(made[-1].glob("seed_*/checkpoints/*.pt"))


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    assert "Traceback" not in out, out
    return out


# --- the search space ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sweep, distribution",
    [
        ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("interval(0.9, 0.99)", FloatDistribution(0.9, 0.99)),
        ("interval(1, 8)", FloatDistribution(1, 8)),
        ("tag(int, interval(1, 8))", IntDistribution(1, 8)),
        ("tag(int, log, interval(1, 8))", IntDistribution(1, 8, log=True)),
        ("range(1, 6)", IntDistribution(1, 5)),  # Python's range: the end is excluded
        ("range(8, 64, step=8)", IntDistribution(8, 56, step=8)),
        ("choice(64, 128)", CategoricalDistribution([64, 128])),
        ("choice([64,64], [128])", CategoricalDistribution(["[64,64]", "[128]"])),
    ],
)
def test_hydra_sweeps_become_optuna_distributions(sweep, distribution):
    assert parse_param("trainer.x", sweep).distribution == distribution


def test_sampled_values_are_override_text():
    assert [override_value(v) for v in (1e-4, 3, True, None, [64, 64], "[128]")] == [
        "0.0001",
        "3",
        "true",
        "null",
        "[64,64]",
        "[128]",
    ]


def test_the_shipped_space_reads_and_a_bad_one_says_what_and_where(tmp_path: Path):
    snake = read_space("snake")
    assert snake.game == "snake" and snake.total_env_steps > 0 and len(snake.params) >= 5
    path = write_space(
        tmp_path,
        params={"trainer.lr": "interval(1e-2, 1e-4)", "trainer.seed": "5", "model.hidden": "choice([8], [8])"},
        objective={"metric": "apples", "seedz": [0]},
        overrides=["trainer.seed=1"],
    )
    with pytest.raises(ConfigError) as err:
        read_space(str(path))
    message = str(err.value)
    for expected in (
        str(path),
        "params.trainer.lr: interval(low, high) needs low < high",
        "params.trainer.seed: '5' is one value, not a sweep",
        "params.model.hidden: choice(...) lists a value twice",
        "objective.seedz: unknown key; did you mean objective.seeds?",
        "objective.metric: 'apples' is not mean_return or final_state.KEY",
        "trainer.total_env_steps=N is required",
    ):
        assert expected in message
    with pytest.raises(ConfigError, match="no such search space.*snake"):
        read_space("snakes")
    fixed = read_space("snake", ["trainer.lr=0.001", "model.hidden=[64]"])  # the command line fixes two keys
    assert {p.key for p in fixed.params} == {p.key for p in snake.params} - {"trainer.lr", "model.hidden"}
    assert fixed.overrides[-2:] == ("trainer.lr=0.001", "model.hidden=[64]") and fixed.fingerprint != snake.fingerprint


def test_a_worker_with_another_space_or_direction_is_refused(tmp_path: Path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = read_space(str(write_space(tmp_path)))
    study, created = open_study("s", storage, space)
    assert created and open_study("s", storage, space)[1] is False
    with pytest.raises(RetroGamerError, match="another search space"):
        open_study("s", storage, read_space(str(write_space(tmp_path)), ["trainer.gamma=0.9"]))
    minimize = read_space(str(write_space(tmp_path, objective={"direction": "minimize"})))
    with pytest.raises(RetroGamerError, match="made to maximize its objective"):
        open_study("s", storage, minimize)


# --- orphaned trials ----------------------------------------------------------------------------------------------
def test_running_trials_of_gone_workers_are_marked_failed_and_others_kept(tmp_path: Path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    me = Worker.this_process()
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead_here = Worker(me.host, me.boot_id, finished.pid, "1")  # that pid, started at another time: not it
    elsewhere = Worker("another-host", "another-boot", 4242, "7")
    now = time.time()
    cases = [(dead_here, now), (elsewhere, now - 3600), (elsewhere, now - 60), (me, now - 3600)]
    for who, heartbeat in cases:
        trial = study.ask()
        trial.set_user_attr(WORKER, who.as_attr())
        trial.set_user_attr(HEARTBEAT, heartbeat)
    orphans = mark_orphans_failed(study, stale_after_s=600, now=now)
    assert [o.number for o in orphans] == [0, 1]
    assert "no longer runs" in orphans[0].reason and f"{me.host}:{finished.pid}" in orphans[0].reason
    assert "no heartbeat for 60.0 min (the limit is 10)" in orphans[1].reason
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert socket.gethostname() == me.host


# --- one machine, SQLite ------------------------------------------------------------------------------------------
def test_a_study_runs_resumes_and_reaps_a_killed_worker(tmp_path: Path):
    """A worker killed by SIGKILL mid-trial leaves it RUNNING; the next worker marks it failed (and its MLflow
    runs), saying how it knew, then runs its own trials in the same study, under the same parent run."""
    project = tmp_path / "project"
    write_space(project, steps=3000)
    first = worker(project, "search", 3)
    wait_for(lambda: checkpointed(project, "search"), "a checkpoint of the first trial", process=first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    out = finish(worker(project, "search", 2))
    storage = f"sqlite:///{project / 'tune' / 'optuna.db'}"
    study = optuna.load_study(study_name="search", storage=storage)
    assert f"trial 0: marked failed: its worker {socket.gethostname()}:{first.pid} no longer runs" in out
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    client = MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    parent = study.user_attrs[PARENT_RUN]
    trial_runs = {
        int(r.data.tags["optuna.trial"]): r for r in client.search_runs([client.get_run(parent).info.experiment_id],
                                                                           f"tags.mlflow.parentRunId = '{parent}'")
    }  # fmt: skip
    assert sorted(trial_runs) == [0, 1, 2]
    assert trial_runs[0].info.status == "FAILED" and "no longer runs" in trial_runs[0].data.tags["optuna.note"]
    for trial in study.trials[1:]:
        run = trial_runs[trial.number]
        assert run.info.status == "FINISHED" and run.data.metrics["objective"] == pytest.approx(trial.value)
        assert run.data.params == {k: override_value(v) for k, v in trial.params.items()}
    seed_runs = client.search_runs(
        [trial_runs[0].info.experiment_id], f"tags.mlflow.parentRunId = '{trial_runs[0].info.run_id}'"
    )
    assert [r.info.status for r in seed_runs] == ["FAILED"]  # the killed worker's training run
    assert client.get_run(parent).info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(parent)}
    assert {"best_params.json", "optimization_history.png", "param_importances.png"} <= names


# --- many machines: PostgreSQL and an MLflow server -----------------------------------------------------------------
@pytest.mark.slow
def test_two_workers_share_a_study_on_postgresql_and_a_sigterm_stops_one_cleanly(tmp_path: Path):
    from servers import create_database, mlflow_server, postgres_cluster, postgres_missing_reason

    if reason := postgres_missing_reason():
        pytest.skip(reason)
    from retro_gamer.policy import TrainedPolicy

    with postgres_cluster(tmp_path / "pg") as base:
        studies = create_database(base, "studies")
        with mlflow_server(create_database(base, "mlflow"), tmp_path / "server" / "artifacts") as url:
            env = {"MLFLOW_TRACKING_URI": url}
            a, b = tmp_path / "a", tmp_path / "b"  # two working folders: nothing shared but the two servers
            for folder in (a, b):
                write_space(folder, steps=4000)
            first = worker(a, "shared", 2, "--storage", studies, env=env)
            second = worker(b, "shared", 2, "--storage", studies, env=env)
            wait_for(lambda: checkpointed(b, "shared", trials=2), "the second worker's second trial", process=second)
            second.send_signal(signal.SIGTERM)
            out_b = finish(second)
            finish(first)
            assert "Stopping: saving a checkpoint" in out_b and "Stopped after 1 trials" in out_b
            study = optuna.load_study(study_name="shared", storage=studies)
            trials = study.trials
            assert sorted(t.number for t in trials) == [0, 1, 2, 3]  # every trial once
            by_worker = {t.user_attrs[WORKER]["pid"]: [] for t in trials}
            for t in trials:
                by_worker[t.user_attrs[WORKER]["pid"]].append(t.state)
            assert sorted(by_worker) == sorted([first.pid, second.pid])
            assert by_worker[first.pid] == [TrialState.COMPLETE] * 2  # the other worker's trials intact
            assert sorted(s.name for s in by_worker[second.pid]) == ["COMPLETE", "FAIL"]

            client = MlflowClient(url)
            parent = client.get_run(study.user_attrs[PARENT_RUN])
            runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
            by_trial = {int(r.data.tags["optuna.trial"]): r for r in runs}
            assert sorted(by_trial) == [0, 1, 2, 3]
            for t in trials:
                run = by_trial[t.number]
                assert run.data.params == {k: override_value(v) for k, v in t.params.items()}
                assert run.info.status == ("KILLED" if t.state == TrialState.FAIL else "FINISHED")
                seeds = client.search_runs(
                    [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
                )
                assert [s.info.status for s in seeds] == [run.info.status]

            # a policy logged by worker A loads in worker B's folder, through the server
            trained_by_a = next(t for t in trials if t.user_attrs[WORKER]["pid"] == first.pid)
            seed_run = client.search_runs(
                [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{by_trial[trained_by_a.number].info.run_id}'"
            )[0]
            os.chdir(b)
            policy = TrainedPolicy(f"runs:/{seed_run.info.run_id}/policy", tracking_uri=url)
            assert policy.config.trainer.total_env_steps == 4000

            # the study resumes: another worker adds to it, under the same parent run
            out = finish(worker(b, "shared", 1, "--storage", studies, env=env))
            assert "Joined study 'shared'" in out and "(4 trials so far)" in out
            study = optuna.load_study(study_name="shared", storage=studies)
            assert len(study.trials) == 5 and study.trials[4].state == TrialState.COMPLETE
            assert client.get_run(parent.info.run_id).info.status == "FINISHED"
            assert client.get_run(parent.info.run_id).data.metrics["best_value"] == pytest.approx(study.best_value)
