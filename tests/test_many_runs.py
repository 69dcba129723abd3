"""docs/many-runs.rst, run here rather than by tests/test_site.py: its experiments must be waited for, and a SLURM
cluster is not at hand. Real dvc in a temporary git repository (the queue's own workers, a bare git repository and
a folder as the remotes), the real submitit local executor with the real preemption signal, real games, tiny
budgets. Every block of the page runs in one of these tests (the first test checks that none is left out)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse

import pytest
import torch
import yaml
from conftest import REPO, TINY
from test_pipeline import make_repo
from test_site import Block, page_blocks, page_env, run_console

from retro_gamer.config.schema import read_config
from retro_gamer.run import checkpoint

PAGE = REPO / "docs" / "many-runs.rst"
BIN = Path(sys.executable).parent
T = TypeVar("T")

# What marks each block of the page, and so the test that runs it.
BLOCKS = {
    "queue": "dvc exp run --queue",
    "follow": "dvc queue status",
    "push": "dvc exp push",
    "pull": "dvc exp pull",
    "load": "TrainedPolicy(",
    "slurm": "hydra/launcher=submitit_slurm",
    "local": "hydra/launcher=submitit_local",
}
ONE_ROUND = {"r1": {"round": 1, "previous": 0}}
# A submitit job's training: one game at a time, so a stop at an episode end resumes exactly (tests/test_resume.py);
# enough episodes that the job still trains for seconds after its first checkpoint, when the test signals it.
EPISODES = 60
JOB_SETTINGS = [o for o in TINY if not o.startswith("tracking.")] + [
    "tracking.enabled=false",
    "trainer.num_envs=1",
    f"trainer.episodes={EPISODES}",
    "trainer.checkpoint_every=2",
]
TIMING_KEYS = {"wall_seconds", "env_steps_per_s"}


def block(name: str) -> Block:
    """The page's block that holds ``BLOCKS[name]``."""
    (found,) = [b for b in page_blocks(PAGE) if BLOCKS[name] in b.code]
    return found


def commands(name: str) -> list[str]:
    """The ``% `` commands of a console block, continued lines joined."""
    return [line[2:] for line in re.sub(r"\\\n\s*", "", block(name).code).splitlines() if line.startswith("% ")]


def sh(command: str, cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=page_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"`{command}` exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def wait_for(check: Callable[[], T | None], what: str, timeout: float, every: float = 0.05) -> T:
    """Poll ``check`` until it answers (anything but ``None``/``False``), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(every)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def test_every_block_of_the_page_runs_in_this_file():
    runnable = [b for b in page_blocks(PAGE) if b.language != "text"]
    assert all(b.exempt is None for b in runnable)
    marked = {b.where(): [name for name, mark in BLOCKS.items() if mark in b.code] for b in runnable}
    assert all(len(names) == 1 for names in marked.values()), marked
    assert sorted(name for names in marked.values() for name in names) == sorted(BLOCKS)


# --- DVC's queue ---------------------------------------------------------------------------------------------------


def queue_states(repo: Path) -> dict[str, str]:
    """``dvc queue status``: each experiment's state by name."""
    out = sh("dvc queue status", repo)
    return dict(re.findall(r"^\w+\s+(seed-\d)\s+.*?(Queued|Running|Success|Failed)\s*$", out, re.M))


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory):
    """The pipeline (tracking on, one round) after the page's first block: two experiments queued and started on
    two workers; ready once both have ended."""
    repo = make_repo(tmp_path_factory.mktemp("queue") / "repo", tracking=True, rounds=ONE_ROUND)
    run_console(block("queue"), repo, page_env())

    def ended() -> dict[str, str] | None:
        states = queue_states(repo)
        return states if len(states) == 2 and not {"Queued", "Running"} & set(states.values()) else None

    states = wait_for(ended, "both experiments to end", timeout=600, every=2)
    assert states == {"seed-1": "Success", "seed-2": "Success"}, sh(
        "dvc queue logs seed-1; dvc queue logs seed-2", repo
    )
    yield repo
    # the workers leave on their own once the queue has been empty a while; the folder goes only after them
    wait_for(lambda: "0 active, 0 idle" in sh("dvc queue status", repo), "the queue's workers to stop", 120, every=2)


@pytest.mark.slow
def test_queued_experiments_run_side_by_side_and_one_is_brought_into_the_workspace(queued: Path):
    run_console(block("follow"), queued, page_env())
    params = yaml.safe_load((queued / "params.yaml").read_text())
    assert params["adversarial"]["seed"] == 2  # dvc exp apply seed-2
    for name in ("player_r1", "enemy_r1"):
        assert json.loads((queued / "runs" / "adversarial" / name / "metrics.json").read_text())["env_steps"] == 600
    assert json.loads((queued / "metrics" / "gates.json").read_text()).keys() == {"player", "enemy"}


@pytest.mark.slow
def test_queued_experiments_are_tracked_in_the_repositorys_own_store(queued: Path):
    """Each experiment ran in a copy under .dvc/tmp/exps/ that DVC deleted; its runs are in the repository's
    mlruns/ (DVC_ROOT), a parent run per experiment named after it, with its files there too."""
    from mlflow import MlflowClient

    store = queued / "mlruns"
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("chase-adversarial")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("role") == "cycle"}
    assert sorted(parents) == ["cycle seed-1", "cycle seed-2"]
    for parent in parents.values():
        assert parent.info.status == "FINISHED"
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert sorted(r.info.run_name for r in children) == ["enemy_r1", "player_r1"]
        assert all(r.info.status == "FINISHED" for r in children)
        files = Path(unquote(urlparse(parent.info.artifact_uri).path))
        assert files.is_relative_to(store / "artifacts") and (files / "tournament" / "tournament.json").is_file()
    assert not list((queued / ".dvc" / "tmp").rglob("mlflow.db"))
    for name in ("player_r1", "enemy_r1"):  # a generation brought into the workspace names the store it is in
        tracking = json.loads((queued / "runs" / "adversarial" / name / "tracking.json").read_text())
        assert tracking["tracking_uri"] == f"sqlite:///{store / 'mlflow.db'}"


@pytest.mark.slow
def test_experiments_are_shared_through_a_git_and_a_dvc_remote(queued: Path):
    run_console(block("push"), queued, page_env())
    assert list((queued.parent / "team-dvc-store").rglob("*.dir"))  # the generations went with the commits
    colleague = run_console(block("pull"), queued, page_env())
    assert colleague == queued.parent / "colleague"
    assert (colleague / "runs" / "adversarial" / "enemy_r1" / "checkpoints").is_dir()  # dvc exp apply seed-2
    (code,) = [b.code for b in page_blocks(PAGE) if BLOCKS["load"] in b.code]
    out = subprocess.run(
        [str(BIN / "python"), "-c", code], cwd=colleague, env=page_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "TrainedPolicy('runs/adversarial/enemy_r1'" in out.stdout, out.stderr[-3000:]


# --- SLURM, through submitit -----------------------------------------------------------------------------------------


def small(command: str) -> list[str]:
    """A page's training command with :data:`JOB_SETTINGS` that it does not set itself."""
    words = shlex.split(command)
    given = {w.split("=", 1)[0] for w in words}
    return words + [s for s in JOB_SETTINGS if s.split("=", 1)[0] not in given]


def job_processes(folder: Path) -> list[int]:
    """The running submitit tasks of jobs under ``folder`` (their command line names their job folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:  # it ended meanwhile
            continue
        if b"submitit.core._submit" in args and any(str(folder).encode() in a for a in args):
            found.append(int(entry.name))
    return found


def final_state(run: Path) -> tuple[dict, dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    latest = checkpoint.latest_checkpoint(run)
    assert latest is not None
    weights = checkpoint.load(latest)["weights"]
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}, weights


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page's local multirun: two runs, each a job of the submitit local executor."""
    project = tmp_path_factory.mktemp("submitit")
    multirun, listing = commands("local")
    result = subprocess.run(small(multirun), cwd=project, env=page_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sh(listing, project)
    return project


@pytest.mark.slow
def test_a_local_multirun_trains_each_run_in_a_job_of_its_own(two_jobs: Path):
    sweep = two_jobs / "runs" / "lr"
    runs = sorted(p for p in sweep.iterdir() if (p / "config.toml").is_file())
    assert sorted(read_config(run).trainer.lr for run in runs) == [3e-4, 1e-3]
    assert all(json.loads((run / "metrics.json").read_text())["episodes"] == EPISODES for run in runs)
    logs = sorted((sweep / ".submitit").glob("*/*_0_log.out"))
    assert len(logs) == 2 and all("Job completed successfully" in log.read_text() for log in logs)


@pytest.mark.slow
def test_a_signalled_job_saves_is_resubmitted_and_its_run_resumes_exactly(two_jobs: Path, tmp_path: Path):
    """The signal submitit's local executor (and SLURM, for submitit) sends before a job's time limit, sent here
    while the job trains: the run saves as on Ctrl+C, submitit's own handler then resubmits the job, and the run
    resumes where it stopped, ending with the weights of the same run never stopped (the multirun's)."""
    multirun, _ = commands("local")
    command = small(multirun.replace("trainer.lr=1e-3,3e-4", "trainer.lr=1e-3").replace("runs/lr", "runs/stopped"))
    log = tmp_path / "launcher.log"
    with open(log, "w") as out:
        launcher = subprocess.Popen(command, cwd=tmp_path, env=page_env(), stdout=out, stderr=subprocess.STDOUT)
    try:

        def training() -> list[int] | None:
            assert launcher.poll() is None, "the job ended before it was signalled:\n" + log.read_text()[-3000:]
            trained = list((tmp_path / "runs" / "stopped").glob("*/checkpoints/ep_0002.pt"))
            return job_processes(tmp_path) if trained else None

        (task,) = wait_for(training, "the job's first checkpoint", timeout=300)
        os.kill(task, signal.SIGUSR2)
        assert launcher.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if launcher.poll() is None:
            launcher.kill()
    (run,) = [p for p in (tmp_path / "runs" / "stopped").iterdir() if (p / "config.toml").is_file()]
    (job_log,) = (tmp_path / "runs" / "stopped" / ".submitit").glob("*/*_0_log.out")
    printed = job_log.read_text() + job_log.with_name(job_log.name.replace(".out", ".err")).read_text()
    assert "Stopping: saving a checkpoint" in printed
    assert "Caught signal SIGUSR2" in printed and "Requeued job" in printed  # submitit's handler, after the save
    resumed = re.search(
        r"training resumed at episode (\d+) from resume.pt with its replay memory", (run / "training.log").read_text()
    )
    assert resumed and 2 <= int(resumed[1]) < EPISODES
    (straight,) = [
        p
        for p in (two_jobs / "runs" / "lr").iterdir()
        if (p / "config.toml").is_file() and read_config(p).trainer.lr == 1e-3
    ]
    (metrics_a, weights_a), (metrics_b, weights_b) = final_state(straight), final_state(run)
    assert metrics_a == metrics_b and metrics_b["episodes"] == EPISODES
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_the_preemption_signal_stops_a_run_and_its_helper_processes_as_ctrl_c_does(tmp_path: Path):
    """SLURM signals every process of a job: the games' and learner processes ignore it, the trainer saves and
    stops. (Not under submitit there is no handler to pass it on to: the run just ends, resumable.)"""
    settings = [s for s in JOB_SETTINGS if not s.startswith(("trainer.game_process", "trainer.learner_process"))]
    settings = [s for s in settings if not s.startswith("trainer.episodes")]
    command = [str(BIN / "python"), "-m", "retro_gamer.train", "+game=snake", "run_dir=runs/helpers", *settings]
    command += ["trainer.episodes=100000", "trainer.game_process=true", "trainer.learner_process=true"]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=page_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = tmp_path / "runs" / "helpers" / "checkpoints" / "ep_0002.pt"
        wait_for(lambda: first.is_file() or proc.poll() is not None, "the run's first checkpoint", timeout=300)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.killpg(proc.pid, signal.SIGUSR2)  # the trainer and both helpers, as SLURM does
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"Stopped at episode \d+; checkpoint saved", out), out[-3000:]
    assert (tmp_path / "runs/helpers" / checkpoint.RESUME_FILE).is_file()


# --- the SLURM command itself ----------------------------------------------------------------------------------------


def test_the_slurm_command_makes_the_job_script_the_page_describes(tmp_path: Path):
    """No SLURM here: the page's command is composed by Hydra as it would be (one run, the launcher's settings
    shown), and submitit writes the batch script from those settings as its SLURM executor does."""
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    (command,) = commands("slurm")
    words = shlex.split(command)
    words = words[:3] + [w for w in words[3:] if w != "-m"]  # python -m retro_gamer.train, without the multirun's -m
    words = [re.sub(r"^(trainer\.lr=[^,]+),.*$", r"\1", w) for w in words]  # one run of the sweep
    shown = sh(shlex.join([*words, "--cfg", "hydra", "-p", "hydra.launcher"]), tmp_path)
    launcher = yaml.safe_load(shown)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["partition"], launcher["timeout_min"], launcher["cpus_per_task"]) == ("cpu", 240, 2)
    assert (launcher["max_num_timeout"], launcher["use_srun"], launcher["signal_delay_s"]) == (10, False, 120)
    # as the launcher hands them to submitit: its own keys aside, every setting under submitit's SLURM name
    settings = {
        k: v for k, v in launcher.items() if k not in {"_target_", "submitit_folder", "max_num_timeout", "name"}
    }
    names = SlurmExecutor._equivalence_dict()
    sbatch = {str(names.get(k, k)): v for k, v in settings.items() if v is not None}
    assert set(sbatch) <= SlurmExecutor._valid_parameters()
    script = _make_sbatch_string(command="python -u -m submitit.core._submit JOBS", folder=tmp_path, **sbatch)
    for line in (
        "#SBATCH --partition=cpu",
        "#SBATCH --time=240",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in script.splitlines(), script
    assert "\npython -u -m submitit.core._submit JOBS" in script and "srun" not in script
