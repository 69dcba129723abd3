"""MLflow tracking against real stores: a SQLite database in a temp project, and a real `mlflow server`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY, run_module
from mlflow import MlflowClient

import retro_gamer
from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import Callback
from retro_gamer.launch import train_run
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run
from retro_gamer.tracking import store
from retro_gamer.tracking.mlflow_run import TRACKING_FILE, factory_file, git_state, source_tags

TRACKED = [*[o for o in TINY if not o.startswith("tracking.")], "trainer.checkpoint_every=3"]


def snake(*overrides: str):
    return run_config_from_hydra(compose_app(["+game=snake", *TRACKED, *overrides]), "snake")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a pyproject.toml: the folder whose mlruns/ is the default store."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "games"\nversion = "0.1"\n')
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "start",
        ],
        check=True,
    )
    return root


def only_run(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_a_run_is_tracked_by_default_in_the_projects_mlruns(project: Path):
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=6",
            "run_dir=runs/snake",
            "tracking.register_as=snake-policy",
            *TRACKED,
        ],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    uri = store.default_uri(project / "runs" / "snake")
    assert uri == f"sqlite:///{project}/mlruns/mlflow.db"
    assert f"mlflow ui --backend-store-uri {uri}" in result.stdout
    assert "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning (runs table)" in result.stdout
    assert "warning" not in result.stderr.lower(), result.stderr
    assert "Validating input example" not in result.stdout + result.stderr  # MLflow's INFO line, meaningless here

    client, run = only_run(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "snake"
    assert client.get_experiment(run.info.experiment_id).name == "snake"
    params, tags = run.data.params, run.data.tags
    assert params["trainer.lr"] == "0.0005" and params["model.hidden"] == "[32]" and params["game.name"] == "snake"
    assert params["trainer.episodes"] == "6" and params["game.crop.radius"] == "5"
    head = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert tags["game"] == "snake" and tags["role"] == "single" and tags["device"] == "cpu"
    assert tags["retro_gamer_version"] == retro_gamer.__version__
    assert head not in tags.values()  # the run directory's repository holds neither the game nor retro-gamer
    assert Path(tags["game_file"]).name == "snake.py" and "game_git_commit" not in tags  # an installed package
    assert experiment_kinds(client) == {"snake": store.EXPERIMENT_KIND[1]}

    returns = client.get_metric_history(run.info.run_id, "episode_return")
    assert sorted(m.step for m in returns) == [1, 2, 3, 4, 5, 6]  # one value per episode, none overwritten
    assert [m.step for m in client.get_metric_history(run.info.run_id, "window_mean_return")] == [3, 6]
    assert {"loss", "env_steps_per_s", "epsilon", "episode_length"} <= set(run.data.metrics)

    files = artifact_paths(client, run.info.run_id)
    assert {
        "config.toml",
        "training.log",
        "metrics.json",
        "learning_curve.png",
        "replays/ep_0003.html",
        "replays/ep_0006.txt",
    } <= files
    assert not [f for f in files if f.startswith("checkpoints/")]  # by default: the final policy is the logged model
    saved = json.loads((project / "runs" / "snake" / TRACKING_FILE).read_text())
    assert saved["run_id"] == run.info.run_id and saved["tracking_uri"] == uri

    model_uri = run.data.tags["policy_model_uri"]
    assert model_uri.startswith("models:/")
    version = client.get_model_version_by_alias("snake-policy", "newest")
    assert str(version.version) == "1" and f"Policy model: {model_uri}" in result.stdout


def experiment_kinds(client: MlflowClient) -> dict[str, str | None]:
    """The UI kind of every experiment in the store but MLflow's own Default one."""
    return {e.name: e.tags.get(store.EXPERIMENT_KIND[0]) for e in client.search_experiments() if e.name != "Default"}


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_git_tags_come_from_the_games_repository_not_the_run_directorys(project: Path, user_game: Path):
    git(user_game, "init", "-q")
    git(user_game, "add", "-A")
    git(user_game, "commit", "-q", "-m", "the game")
    game_head, project_head = git(user_game, "rev-parse", "HEAD"), git(project, "rev-parse", "HEAD")
    run_dir = project / "runs" / "walker"
    created = run_module(
        [
            "-m",
            "retro_gamer.cli",
            "create",
            "--game",
            str(user_game / "my_game.py"),
            "--output",
            str(run_dir),
            "trainer.episodes=3",
            *TRACKED,
            "tracking.replay_every=0",
        ],
        cwd=project,
    )
    assert created.returncode == 0, created.stderr
    trained = run_module(["-m", "retro_gamer.cli", "train", str(run_dir)], cwd=project)
    assert trained.returncode == 0, trained.stderr
    client, run = only_run(store.default_uri(run_dir))
    tags = run.data.tags
    assert tags["game_file"] == str((user_game / "my_game.py").resolve())
    assert (
        tags["game_git_commit"] == game_head == tags["mlflow.source.git.commit"] and tags["game_git_dirty"] == "false"
    )
    assert project_head not in tags.values()

    (user_game / "my_game.py").write_text((user_game / "my_game.py").read_text() + "# a change not committed\n")
    again = run_module(["-m", "retro_gamer.cli", "train", str(run_dir), "--episodes", "6"], cwd=project)
    assert again.returncode == 0, again.stderr
    client, run = only_run(store.default_uri(run_dir))
    assert run.data.tags["game_git_commit"] == game_head and run.data.tags["game_git_dirty"] == "true"


def test_retro_gamers_own_commit_is_tagged_when_it_runs_from_a_checkout():
    package = Path(retro_gamer.__file__)
    tags = source_tags("retro_gamer.examples.gems:create_game", package.parent)  # a game inside the checkout
    if git_state(package) is None:
        assert "retro_gamer_git_commit" not in tags
        pytest.skip(f"retro-gamer is installed at {package.parent}, not run from a git checkout")
    commit = tags["retro_gamer_git_commit"]
    assert git(package.parent, "cat-file", "-t", commit) == "commit" and tags["retro_gamer_git_dirty"] in (
        "true",
        "false",
    )
    assert tags["game_git_commit"] == commit and tags["retro_gamer_version"] == retro_gamer.__version__


def test_git_state_knows_what_a_repository_holds(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "games").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "games" / "maze.py").write_text("def create_game(): ...\n")
    assert git_state(repo / "games" / "maze.py") is None  # no commit yet
    (repo / ".gitignore").write_text(".venv/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "maze")
    head = git(repo, "rev-parse", "HEAD")
    assert git_state(repo / "games" / "maze.py") == (head, False)
    (repo / "games" / "comet.py").write_text("def create_game(): ...\n")
    assert git_state(repo / "games" / "comet.py") == (head, True)  # the commit lacks it
    (repo / ".venv" / "site-packages").mkdir(parents=True)
    (repo / ".venv" / "site-packages" / "installed.py").write_text("")
    assert git_state(repo / ".venv" / "site-packages" / "installed.py") is None  # not the repository's code
    (repo / "games" / "maze.py").write_text("def create_game(): return None\n")
    assert git_state(repo / "games" / "maze.py") == (head, True)
    (tmp_path / "loose.py").write_text("")
    assert git_state(tmp_path / "loose.py") is None


def test_the_game_file_is_the_file_its_factory_resolves_to(tmp_path: Path):
    name = f"mazegame_{tmp_path.name.replace('-', '_')}"  # a module name no other test imports
    (tmp_path / f"{name}.py").write_text("def create_game(): ...\ndef other(): ...\n")
    (tmp_path / f"{name}_pkg").mkdir()
    (tmp_path / f"{name}_pkg" / "__init__.py").write_text("from .board import create_game\n")
    (tmp_path / f"{name}_pkg" / "board.py").write_text("def create_game(): ...\n")
    assert factory_file(f"{name}.py", tmp_path) == tmp_path / f"{name}.py"
    assert factory_file(f"{name}:other", tmp_path) == tmp_path / f"{name}.py"
    assert factory_file(f"{name}_pkg", tmp_path) == tmp_path / f"{name}_pkg" / "board.py"


def test_resuming_from_another_folder_continues_the_same_mlflow_run(project: Path, tmp_path: Path):
    run_dir = project / "runs" / "snake"
    first = run_module(
        ["-m", "retro_gamer.train", "+game=snake", "trainer.episodes=3", f"run_dir={run_dir}", *TRACKED], cwd=project
    )
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_module(["-m", "retro_gamer.cli", "train", str(run_dir), "--episodes", "6"], cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert not (elsewhere / "mlruns").exists()
    client, run = only_run(store.default_uri(run_dir))
    assert run.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "episode_return")) == [1, 2, 3, 4, 5, 6]
    assert run.data.params["trainer.episodes"] == "3"  # MLflow params never change…
    assert run.data.tags["changed.trainer.episodes"] == "3 → 6 at episode 3"  # …so a change is a tag


def test_tracking_disabled_writes_nothing_to_mlflow(project: Path):
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=3",
            "run_dir=runs/snake",
            *TRACKED,
            "tracking.enabled=false",
        ],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert not (project / "mlruns").exists() and not (project / "runs" / "snake" / TRACKING_FILE).exists()
    assert "mlflow" not in result.stdout.lower()


class Raise(Callback):
    def __init__(self, episode: int, sig: int | None = None):
        self.episode, self.sig = episode, sig

    def on_episode_end(self, trainer, episode, episode_return, length) -> None:
        if episode == self.episode:
            if self.sig is None:
                raise RuntimeError("a fault in the middle of training")
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("ending,status", [(None, "FAILED"), (signal.SIGTERM, "KILLED")])
def test_a_run_that_fails_or_is_stopped_ends_so_in_mlflow(tmp_path: Path, ending, status):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    run_dir = tmp_path / "run"
    cfg = prepare_run(snake("trainer.episodes=30", f"tracking.uri={uri}"), run_dir, "snake")
    if ending is None:
        with pytest.raises(RuntimeError):
            train_run(run_dir, cfg, callbacks=[Raise(4)], progress=False)
    else:
        train_run(run_dir, cfg, callbacks=[Raise(4, ending)], progress=False)
    client, run = only_run(uri)
    assert run.info.status == status
    assert len(client.get_metric_history(run.info.run_id, "episode_return")) == 4  # buffered metrics still sent


def test_the_store_follows_dvc_root_and_never_the_current_folder(tmp_path: Path, monkeypatch):
    nested = tmp_path / "repo" / "runs" / "adversarial" / "player_r1"
    nested.mkdir(parents=True)
    (tmp_path / "repo" / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert store.default_uri(nested) == f"sqlite:///{tmp_path}/repo/mlruns/mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "original"))  # dvc exp run works in a temp copy
    assert store.default_uri(nested) == f"sqlite:///{tmp_path}/original/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert store.resolve_uri(None, nested) == "http://127.0.0.1:5999"
    assert store.resolve_uri("sqlite:////x/y.db", nested) == "sqlite:////x/y.db"


def test_a_hydra_multirun_with_joblib_records_every_job(project: Path):
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=6",
            "run_dir=sweep",
            *TRACKED,
            "tracking.replay_every=0",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "-m",
            "trainer.seed=1,2",
        ],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    assert "database is locked" not in result.stdout + result.stderr
    client = MlflowClient(store.default_uri(project / "sweep"))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.params["trainer.seed"] for r in runs) == ["1", "2"]
    assert sorted(r.info.run_name for r in runs) == ["seed=1", "seed=2"]  # the folders are named after every override
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "episode_return")) == 6


def test_multirun_names_show_the_swept_values_and_never_a_path_fragment(project: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/elsewhere/mlflow.db"
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=2",
            "run_dir=sweep",
            *TRACKED,
            "tracking.replay_every=0",
            f"tracking.uri={uri}",
            "-m",
            "trainer.lr=0.001,0.0003",
        ],
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.run_name for r in runs) == ["lr=0.0003", "lr=0.001"]
    assert experiment_kinds(client) == {"snake": store.EXPERIMENT_KIND[1]}


# --- a real MLflow server ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mlflow server` with a SQLite backend and artifact serving, on 127.0.0.1 and a free port.
    Shared by the tests below; the last one stops it on purpose."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield url, proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_training_against_a_real_server_and_loading_the_policy_through_it(tmp_path: Path, mlflow_server):
    from retro_gamer.policy import TrainedPolicy

    url, _ = mlflow_server
    run_dir = tmp_path / "run"
    result = run_module(
        [
            "-m",
            "retro_gamer.train",
            "+game=snake",
            "trainer.episodes=6",
            f"run_dir={run_dir}",
            *TRACKED,
            f"tracking.uri={url}",
            "tracking.register_as=snake-policy",
            "tracking.experiment=team",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr.lower(), result.stderr
    assert f"{url}/#/experiments/" in result.stdout
    client, run = only_run(url)
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "team"
    assert len(client.get_metric_history(run.info.run_id, "episode_return")) == 6
    assert "replays/ep_0006.html" in artifact_paths(client, run.info.run_id)
    assert not (tmp_path / "mlruns").exists()

    served = TrainedPolicy("models:/snake-policy@latest", tracking_uri=url)
    local = TrainedPolicy(run_dir)
    import random

    from retro.examples.snake import create_game

    random.seed(5)
    game = create_game()
    assert served.q_values(game).tolist() == local.q_values(game).tolist()


def test_a_store_that_goes_away_never_stops_training(tmp_path: Path, mlflow_server, capsys):
    url, server = mlflow_server

    class StopServer(Callback):
        def on_episode_end(self, trainer, episode, episode_return, length) -> None:
            if episode == 4:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    run_dir = tmp_path / "run"
    cfg = prepare_run(snake("trainer.episodes=9", f"tracking.uri={url}"), run_dir, "snake")
    summary = train_run(run_dir, cfg, callbacks=[StopServer()], progress=False)
    assert summary["status"] == "finished" and summary["episodes"] == 9
    assert [e for e, _ in checkpoint.list_checkpoints(run_dir)] == [3, 6, 9]
    assert json.loads((run_dir / "metrics.json").read_text())["episodes"] == 9
    out, err = capsys.readouterr()
    assert err.count("warning: the MLflow store") == 1 and "Training goes on" in err
    assert "metric values and" in out and "The run directory has them all." in out
