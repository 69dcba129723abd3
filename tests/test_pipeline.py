"""The adversarial DVC pipeline, run by real `dvc` in a temporary git repository on tiny budgets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, TINY
from pipeline_copy import fresh_pipeline

DVC = str(Path(sys.executable).parent / "dvc")
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


def tiny_params(params: dict) -> None:
    """Tiny budgets: 600 env steps a generation, 300 turns of each of 2 games, so every generation ends an episode
    (a game lasts at most 200 turns) and writes a checkpoint of its own."""
    adversarial = params["adversarial"]
    for side in ("player", "enemy"):
        adversarial[side] = {
            "steps": 600,
            "overrides": [*SMALL, "trainer.checkpoint_every=2", "tracking.replay_every=0"],
        }
    adversarial["warm_start"] = {"epsilon": 0.3, "steps": 100, "replay": True}
    adversarial["tournament"].update(episodes=4)


def make_repo(root: Path, tracking: bool, rounds: dict | None = None) -> Path:
    """A git + DVC repository holding this project's pipeline, with tiny budgets."""

    def tiny(params: dict) -> None:
        tiny_params(params)
        params["adversarial"]["tracking"] = tracking
        if rounds is not None:
            params["rounds"] = rounds

    return fresh_pipeline(root, tiny)


TWO_ROUNDS = {"r1": {"round": 1, "previous": 0}, "r2": {"round": 2, "previous": 1}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The pipeline after one `dvc repro` of two rounds with tracking off (MLflow has its own test below)."""
    root = make_repo(tmp_path_factory.mktemp("pipeline") / "repo", tracking=False, rounds=TWO_ROUNDS)
    (root / "first_repro.log").write_text(sh(DVC, "repro", cwd=root))
    return root


def weights(run: Path) -> dict:
    """The generation's final policy weights."""
    from retro_gamer.policy import TrainedPolicy

    return TrainedPolicy(run).network.state_dict()


@pytest.mark.slow
def test_repro_trains_every_round_warm_started_against_a_pool_then_evaluates(repo: Path):
    out = (repo / "first_repro.log").read_text()
    assert ran(out) == ["baselines", "player@r1", "enemy@r1", "player@r2", "enemy@r2", "evaluate"]
    from retro_gamer.adversarial.pool import read_pool

    generations = repo / "runs" / "adversarial"
    for side in ("player", "enemy"):
        first, second = (json.loads((generations / f"{side}_r{n}" / "metrics.json").read_text()) for n in (1, 2))
        assert (first["env_steps"], second["env_steps"]) == (600, 1200)  # the budget is exact, and cumulative
        assert second["episodes"] > first["episodes"]  # the counters continue
        assert {"config.toml", "metrics.json", "training.log", "checkpoints", "opponents.json"} <= {
            p.name for p in (generations / f"{side}_r2").iterdir()
        }
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.run.checkpoint import list_checkpoints, load

    for name in ("player_r1", "enemy_r1", "player_r2", "enemy_r2"):  # a generation's policy: its average
        policy = TrainedPolicy(generations / name)
        assert policy.checkpoint_path.name == "average.pt"
        assert load(policy.checkpoint_path)["averaged"][-1] == list_checkpoints(generations / name)[-1][1].name
        assert f"{name.replace('_', '@')}'s policy: " in out
    members = read_pool(generations / "player_r2" / "opponents.json")
    assert [(m.name, m.share) for m in members] == [("enemy_r0", pytest.approx(0.4)), ("enemy_r1", pytest.approx(0.6))]
    members = read_pool(generations / "enemy_r2" / "opponents.json")
    assert [m.name for m in members] == ["player_r0", "player_r1", "player_r2"]
    assert "continues" in out  # the warm start said what it carried over
    tournament = json.loads((repo / "metrics" / "tournament.json").read_text())
    assert set(tournament["ratings"]["player"]) == {"r0", "r1", "r2"}
    gates = json.loads((repo / "metrics" / "gates.json").read_text())
    assert set(gates) == {"player", "enemy"} and all(isinstance(gates[side]["gate"], bool) for side in gates)
    assert {"rating_rise", "final_above_scripted", "largest_drop_vs_scripted", "exploitability"} <= set(gates["player"])
    assert (repo / "metrics" / "payoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "player" in (repo / "metrics" / "ratings.csv").read_text().splitlines()[0]
    assert "gates.json" in sh(DVC, "metrics", "show", cwd=repo)


def test_a_finished_run_is_judged_again_with_its_generations_averaged(repo: Path, tmp_path: Path):
    """benchmarks/average_rescore.py: a copy of the run, each generation averaged, the tournament played again; the
    run itself is left as it was."""
    from retro_gamer.run.checkpoint import list_checkpoints

    gates = (repo / "metrics" / "gates.json").read_text()
    script = REPO / "benchmarks" / "average_rescore.py"
    env = {**ACTIVATED, "RETRO_GAMER_BENCHMARK_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(script), str(repo), "--average", "2", "--name", "rescored"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "rescored.json").read_text())["figures"]
    newest = [path.name for _, path in list_checkpoints(repo / "runs" / "adversarial" / "enemy_r2")[-2:]]
    assert figures["averaged"]["checkpoints"]["enemy_r2"] == newest
    for verdict in figures.values():
        assert set(verdict["ratings"]) == {"player", "enemy"} and set(verdict["checks"]) >= {
            "player_gate",
            "enemy_gate",
        }
    assert (repo / "metrics" / "gates.json").read_text() == gates


@pytest.mark.slow
def test_two_fresh_pipelines_give_the_same_weights_and_verdicts(repo: Path, tmp_path: Path):
    again = make_repo(tmp_path / "again", tracking=False, rounds=TWO_ROUNDS)
    sh(DVC, "repro", cwd=again)
    for name in ("player_r1", "enemy_r1", "player_r2", "enemy_r2"):
        first, second = weights(repo / "runs" / "adversarial" / name), weights(again / "runs" / "adversarial" / name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name
    for name in ("tournament.json", "gates.json", "matches.json"):
        assert (repo / "metrics" / name).read_text() == (again / "metrics" / name).read_text()


@pytest.mark.slow
def test_a_second_repro_runs_nothing_even_after_python_writes_bytecode(repo: Path):
    cache = repo / "retro_gamer" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "stale.cpython-311.pyc").write_bytes(b"bytecode")
    assert ran(sh(DVC, "repro", cwd=repo)) == []


@pytest.mark.slow
def test_changing_the_enemy_budget_reruns_the_enemy_and_what_follows(repo: Path):
    set_params(repo, lambda p: p["adversarial"]["enemy"].update(steps=800))
    stages = ran(sh(DVC, "repro", cwd=repo))
    assert "player@r1" not in stages and "baselines" not in stages
    assert stages == ["enemy@r1", "player@r2", "enemy@r2", "evaluate"]


@pytest.mark.slow
def test_another_round_trains_only_that_round(repo: Path):
    set_params(repo, lambda p: p["rounds"].update(r3={"round": 3, "previous": 2}))
    assert ran(sh(DVC, "repro", cwd=repo)) == ["player@r3", "enemy@r3", "evaluate"]
    metrics = json.loads((repo / "runs" / "adversarial" / "player_r3" / "metrics.json").read_text())
    assert metrics["env_steps"] == 1800


@pytest.mark.slow
def test_a_changed_early_generation_reruns_every_later_stage(repo: Path):
    """The pool of a later stage holds every older generation; depending on the latest opponent and the side's own
    previous generation reaches all of them through the chain."""
    log = repo / "runs" / "adversarial" / "enemy_r1" / "training.log"
    log.write_text(log.read_text() + "edited\n")
    sh(DVC, "commit", "-f", "enemy@r1", cwd=repo)
    assert ran(sh(DVC, "repro", cwd=repo)) == ["player@r2", "enemy@r2", "player@r3", "enemy@r3", "evaluate"]


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
def test_a_stage_stopped_by_the_safety_cap_fails(tmp_path: Path):
    root = make_repo(tmp_path / "repo", tracking=False, rounds={"r1": {"round": 1, "previous": 0}})

    def slow(params: dict) -> None:
        params["adversarial"]["safety_minutes"] = 0.002
        params["adversarial"]["player"]["steps"] = 10**7

    set_params(root, slow)
    result = subprocess.run(
        [DVC, "repro", "player@r1"], cwd=root, capture_output=True, text=True, timeout=600, env=ACTIVATED
    )
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "stopped by time_limit" in message and "adversarial.safety_minutes" in message
    assert "player@r1" in sh(DVC, "status", cwd=root)  # not recorded as done: the next repro trains it again


@pytest.mark.slow
def test_mlflow_records_each_experiment_as_a_parent_run_with_a_child_per_generation(tmp_path: Path):
    from mlflow import MlflowClient

    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.tracking import store

    root = make_repo(tmp_path / "repo", tracking=True, rounds=TWO_ROUNDS)
    assert ran(sh(DVC, "repro", cwd=root)) == [
        "baselines",
        "player@r1",
        "enemy@r1",
        "player@r2",
        "enemy@r2",
        "evaluate",
    ]
    uri = store.default_uri(root / "runs" / "adversarial")
    assert uri == f"sqlite:///{root}/mlruns/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("chase-adversarial").experiment_id
    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    parents = [r for r in runs.values() if r.data.tags.get("role") == "cycle"]
    assert len(parents) == 1 and set(runs) == {
        parents[0].info.run_name,
        "player_r1",
        "enemy_r1",
        "player_r2",
        "enemy_r2",
    }
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for name, role, opponent, pool in (
        ("player_r1", "player", "enemy_r0", "enemy_r0 100 %"),
        ("enemy_r2", "enemy", "player_r2", "player_r0 40 %, player_r1 20 %, player_r2 40 %"),
    ):
        run = runs[name]
        assert (run.data.tags["mlflow.parentRunId"], run.data.tags["role"], run.data.tags["opponent"]) == (
            parent.info.run_id,
            role,
            opponent,
        )
        assert run.data.params["opponent_pool"] == pool
        assert run.data.params["policy_average"].startswith("ep_")  # the checkpoints its policy averages
        model_id = run.data.tags["policy_model_uri"].removeprefix("models:/")
        assert client.get_logged_model(model_id).tags["retro_gamer.checkpoint"] == "average"  # the one a champion gets
    first = [m.step for m in client.get_metric_history(runs["player_r1"].info.run_id, "episode_return")]
    second = [m.step for m in client.get_metric_history(runs["player_r2"].info.run_id, "episode_return")]
    assert min(second) == max(first) + 1  # the warm start continues the side's curve end to end
    files = {a.path for folder in ("tournament", "replays") for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {
        "tournament/tournament.json",
        "tournament/ratings.csv",
        "tournament/payoff.png",
        "replays/final_match_r2.html",
        "replays/final_player_vs_scripted_enemy.html",
        "replays/scripted_player_vs_final_enemy.html",
    } <= files
    assert {
        "player_rating",
        "enemy_rating",
        "player_gate",
        "enemy_gate",
        "player_score_vs_scripted",
        "enemy_score_vs_scripted",
    } <= set(parent.data.metrics)
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "player_rating")] == [0, 1, 2]
    for side in ("player", "enemy"):
        gate = parent.data.metrics[f"{side}_gate"]
        versions = client.search_model_versions(f"name = 'chase-{side}'")
        if gate:
            TrainedPolicy(f"models:/chase-{side}@champion", tracking_uri=uri)
        else:
            assert not any("champion" in v.aliases for v in versions)
    assert ran(sh(DVC, "repro", cwd=root)) == []  # a stage DVC skips creates no MLflow run
    assert len(client.search_runs([experiment])) == 5
    ended = parent.info.end_time

    sh(DVC, "exp", "run", "-S", "adversarial.seed=1", cwd=root)  # another experiment: its own parent
    parents = [r for r in client.search_runs([experiment]) if r.data.tags.get("role") == "cycle"]
    assert len(parents) == 2
    assert client.get_run(parent.info.run_id).info.end_time == ended  # the older parent is left as it was
