"""The adversarial DVC pipeline, run by real `dvc` in a temporary git repository on tiny budgets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY

DVC = str(Path(sys.executable).parent / "dvc")
COPIED = ["dvc.yaml", "params.yaml", "pipelines", "conf", "retro_gamer", "pyproject.toml", ".dvc/config", ".dvcignore",
          ".dvc/.gitignore", ".gitignore"]
SMALL = [o for o in TINY if not o.startswith("tracking.")]


# as after `source .venv/bin/activate`: the stages' `python` is this environment's
ACTIVATED = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def sh(*args: str, cwd: Path) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=900, env=ACTIVATED)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def set_params(repo: Path, change) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(root: Path, tracking: bool, rounds: dict | None = None) -> Path:
    """A git + DVC repository holding this project's pipeline, with tiny budgets."""
    root.mkdir(parents=True)
    for name in COPIED:
        source, target = REPO / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache"))
        else:
            shutil.copy(source, target)

    def tiny(params: dict) -> None:
        adversarial = params["adversarial"]
        for side in ("player", "enemy"):
            adversarial[side] = {"minutes": None, "episodes": 4, "overrides": [*SMALL, "trainer.checkpoint_every=2",
                                                              "tracking.replay_every=0"]}
        adversarial["tournament"]["episodes"] = 2
        adversarial["tracking"] = tracking
        if rounds is not None:
            params["rounds"] = rounds

    set_params(root, tiny)
    sh("git", "init", "-q", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pipeline", cwd=root)
    return root


TWO_ROUNDS = {"r1": {"round": 1, "previous": 0}, "r2": {"round": 2, "previous": 1}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The pipeline after one `dvc repro` of two rounds with tracking off (MLflow has its own test below)."""
    root = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", tracking=False, rounds=TWO_ROUNDS)
    (root / "first_repro.log").write_text(sh(DVC, "repro", cwd=root))
    return root


@pytest.mark.slow
def test_repro_trains_every_round_then_evaluates(repo: Path):
    out = (repo / "first_repro.log").read_text()
    assert ran(out) == ["baselines", "player@r1", "enemy@r1", "player@r2", "enemy@r2", "evaluate"]
    from retro_gamer.policy import TrainedPolicy

    for side in ("player", "enemy"):
        run = repo / "runs" / "adversarial" / f"{side}_r2"
        assert {"config.toml", "metrics.json", "training.log", "checkpoints"} <= {p.name for p in run.iterdir()}
        TrainedPolicy(run)
    tournament = json.loads((repo / "metrics" / "tournament.json").read_text())
    assert set(tournament["ratings"]["player"]) == {"r0", "r1", "r2"}
    assert "player" in (repo / "metrics" / "ratings.csv").read_text().splitlines()[0]
    metrics = sh(DVC, "metrics", "show", cwd=repo)
    assert "tournament.json" in metrics


@pytest.mark.slow
def test_a_second_repro_runs_nothing(repo: Path):
    assert ran(sh(DVC, "repro", cwd=repo)) == []


@pytest.mark.slow
def test_changing_the_enemy_budget_reruns_the_enemy_and_what_follows(repo: Path):
    set_params(repo, lambda p: p["adversarial"]["enemy"].update(episodes=6))
    stages = ran(sh(DVC, "repro", cwd=repo))
    assert "player@r1" not in stages and "baselines" not in stages
    assert stages == ["enemy@r1", "player@r2", "enemy@r2", "evaluate"]


@pytest.mark.slow
def test_another_round_trains_only_that_round(repo: Path):
    set_params(repo, lambda p: p["rounds"].update(r3={"round": 3, "previous": 2}))
    assert ran(sh(DVC, "repro", cwd=repo)) == ["player@r3", "enemy@r3", "evaluate"]


@pytest.mark.slow
def test_push_and_pull_through_a_local_remote(repo: Path, tmp_path: Path):
    from retro_gamer.policy import TrainedPolicy

    remote = tmp_path / "remote"
    sh(DVC, "remote", "add", "-d", "shared", str(remote), cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results", cwd=repo)
    sh(DVC, "push", cwd=repo)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh(DVC, "pull", cwd=clone)
    TrainedPolicy(clone / "runs" / "adversarial" / "enemy_r3")


@pytest.mark.slow
def test_mlflow_records_the_cycle_as_a_parent_run_with_a_child_per_stage(tmp_path: Path):
    from mlflow import MlflowClient

    from retro_gamer import store
    from retro_gamer.policy import TrainedPolicy

    root = make_repo(tmp_path / "repo", tracking=True, rounds={"r1": {"round": 1, "previous": 0}})
    assert ran(sh(DVC, "repro", cwd=root)) == ["baselines", "player@r1", "enemy@r1", "evaluate"]
    uri = store.default_uri(root / "runs" / "adversarial")
    assert uri == f"sqlite:///{root}/mlruns/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("chase-adversarial").experiment_id
    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    assert set(runs) == {"cycle", "player_r1", "enemy_r1"}
    parent = runs["cycle"]
    assert parent.info.status == "FINISHED"
    for name, role, opponent in (("player_r1", "player", "enemy_r0"), ("enemy_r1", "enemy", "player_r1")):
        tags = runs[name].data.tags
        assert (tags["mlflow.parentRunId"], tags["role"], tags["round"], tags["opponent"]) == (parent.info.run_id, role, "1", opponent)
    files = {a.path for folder in ("tournament", "replays") for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {"tournament/tournament.json", "tournament/ratings.csv", "replays/final_match_r1.html"} <= files
    assert {"player_rating", "enemy_rating"} <= set(parent.data.metrics)
    for side in ("player", "enemy"):
        assert client.get_model_version_by_alias(f"chase-{side}", "champion")
        TrainedPolicy(f"models:/chase-{side}@champion", tracking_uri=uri)
    assert ran(sh(DVC, "repro", cwd=root)) == []  # a stage DVC skips creates no MLflow run
    assert len(client.search_runs([experiment])) == 3
