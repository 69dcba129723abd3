"""Policies as MLflow models: logged, registered, promoted and loaded back by URI, in real SQLite stores."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch
from mlflow.models import Model
from retro.examples.snake import create_game
from retro.input import ProgrammaticInput
from retro.views import HeadlessView

from retro_gamer import TrainedPolicy
from retro_gamer.compat import tomllib
from retro_gamer.errors import RetroGamerError
from retro_gamer.games import is_model_uri
from retro_gamer.run.checkpoint import latest_checkpoint
from retro_gamer.tracking.mlflow_model import (
    MODEL_NAME,
    NEWEST_ALIAS,
    download_policy,
    log_policy_model,
    promote,
    register_policy,
)
from retro_gamer.tracking.store import experiment_id, open_store

NAME = "snake-policy"


def new_store(folder: Path) -> tuple[str, mlflow.MlflowClient]:
    uri = "sqlite:///" + str(folder / "mlruns" / "mlflow.db")
    return uri, open_store(uri)


@pytest.fixture(scope="module")
def logged(trained_snake: Path, tmp_path_factory) -> SimpleNamespace:
    """trained_snake's latest checkpoint logged as a model of a run that is still going, and registered."""
    uri, client = new_store(tmp_path_factory.mktemp("store"))
    run_id = client.create_run(experiment_id(client, "snake", uri)).info.run_id
    fluent_before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    started = time.perf_counter()
    model_uri = log_policy_model(client, run_id, trained_snake, latest_checkpoint(trained_snake))
    seconds = time.perf_counter() - started
    print(f"\nlog_policy_model: {seconds:.2f} s")
    fluent_after = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    version = register_policy(client, model_uri, NAME)
    return SimpleNamespace(
        uri=uri,
        client=client,
        run_id=run_id,
        model_uri=model_uri,
        version=version,
        fluent_before=fluent_before,
        fluent_after=fluent_after,
    )


def positions(n: int = 50):
    """Live snake games from random play with a fixed seed, one position per turn."""
    random.seed(0)
    keys = ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None]
    pressing = ProgrammaticInput()
    game = None
    for _ in range(n):
        if game is None or not game.playing:
            game = create_game()
            game.input_source, game.view = pressing, HeadlessView()
            game.start()
        yield game
        pressing.press(random.choice(keys))
        game.step()


def test_logging_links_the_model_to_the_run_and_leaves_mlflow_as_it_was(logged):
    assert logged.model_uri.startswith("models:/m-") and is_model_uri(logged.model_uri)
    run = logged.client.get_run(logged.run_id)
    assert run.info.status == "RUNNING"  # the caller ends its run
    assert [o.model_id for o in run.outputs.model_outputs] == [logged.model_uri.removeprefix("models:/")]
    model = logged.client.get_logged_model(logged.model_uri.removeprefix("models:/"))
    assert (model.name, str(model.status), model.source_run_id) == (MODEL_NAME, "READY", logged.run_id)
    assert logged.fluent_after == logged.fluent_before and mlflow.active_run() is None


def test_the_model_has_a_signature_an_input_example_and_the_run_folder(logged, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    location = logged.client.get_logged_model(logged.model_uri.removeprefix("models:/")).artifact_location
    local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path), tracking_uri=logged.uri)
    files = sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file())
    assert {
        "MLmodel",
        "policy_model.py",
        "artifacts/run/config.toml",
        "artifacts/run/checkpoints/ep_0006.pt",
        "input_example.json",
        "requirements.txt",
    } <= set(files), files
    model = Model.load(local)
    assert model.flavors["python_function"]["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # no pickle
    inputs = {spec.name: (spec.type, spec.shape) for spec in model.signature.inputs.inputs}
    assert inputs == {"board": (np.dtype(np.uint8), (-1, 11, 11)), "extras": (np.dtype(np.float32), (-1, 2))}
    assert model.signature.outputs.inputs[0].type == np.dtype(np.int64)
    example = model.load_input_example(local)
    assert example["board"].shape == (1, 11, 11) and example["extras"].shape == (1, 2)


@pytest.mark.parametrize("form", ["model_id", "run", "version", "alias", "latest"])
def test_every_uri_form_loads_the_same_policy(logged, trained_snake: Path, form: str):
    uri = {
        "model_id": logged.model_uri,
        "run": f"runs:/{logged.run_id}/{MODEL_NAME}",
        "version": f"models:/{NAME}/{logged.version}",
        "alias": f"models:/{NAME}@{NEWEST_ALIAS}",
        "latest": f"models:/{NAME}@latest",
    }[form]
    started = time.perf_counter()
    by_uri = TrainedPolicy(uri, tracking_uri=logged.uri)
    print(f"\nTrainedPolicy({uri!r}): {time.perf_counter() - started:.3f} s")
    assert repr(by_uri) == f"TrainedPolicy({uri!r}, checkpoint='ep_0006')"
    local = TrainedPolicy(trained_snake)
    for game in positions():
        assert np.array_equal(by_uri.q_values(game), local.q_values(game))
        assert by_uri.get_action(game) == local.get_action(game)


def test_pyfunc_predicts_what_the_network_chooses(logged, trained_snake: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged.uri)  # how an MLflow user points at the store
    assert mlflow.get_tracking_uri() == logged.uri
    local = TrainedPolicy(trained_snake)
    observations = [local.encoder.encode(game, rendered=False) for game in positions()]
    batch = {"board": np.stack([o.board for o in observations]), "extras": np.stack([o.extras for o in observations])}
    with torch.inference_mode():
        expected = local.network(torch.from_numpy(batch["board"]), torch.from_numpy(batch["extras"])).argmax(1).numpy()
    for uri in (logged.model_uri, f"models:/{NAME}/{logged.version}"):
        actions = mlflow.pyfunc.load_model(uri).predict(batch)
        assert actions.dtype == np.int64 and np.array_equal(actions, expected)


def test_a_model_logged_before_the_package_had_subpackages_still_loads(logged, tmp_path: Path, monkeypatch):
    """Models logged by retro-gamer before 0.5 name ``retro_gamer.mlflow_model.PolicyModel`` in their code file."""
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged.uri)
    location = logged.client.get_logged_model(logged.model_uri.removeprefix("models:/")).artifact_location
    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(tmp_path), tracking_uri=logged.uri)
    )
    code = local / "policy_model.py"
    assert "from retro_gamer.tracking.mlflow_model import PolicyModel" in code.read_text()
    code.write_text(code.read_text().replace("retro_gamer.tracking.mlflow_model", "retro_gamer.mlflow_model"))
    board = np.zeros((1, 11, 11), dtype=np.uint8)
    extras = np.zeros((1, 2), dtype=np.float32)
    old = mlflow.pyfunc.load_model(str(local)).predict({"board": board, "extras": extras})
    new = mlflow.pyfunc.load_model(logged.model_uri).predict({"board": board, "extras": extras})
    assert np.array_equal(old, new)


def test_register_makes_new_versions_and_moves_the_newest_alias_and_promote_sets_champion(logged):
    client, name = logged.client, "registry-test"
    assert register_policy(client, logged.model_uri, name) == "1"
    assert register_policy(client, f"runs:/{logged.run_id}/{MODEL_NAME}", name) == "2"
    assert str(client.get_model_version_by_alias(name, NEWEST_ALIAS).version) == "2"
    message = promote(f"models:/{name}/1", name, "champion", logged.uri)
    assert message.startswith(f"{name} version 1 is now @champion")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert "(was version 1)" in promote(f"models:/{name}@{NEWEST_ALIAS}", name, "champion", logged.uri)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    # a logged model is registered under the name first, once
    first = promote(logged.model_uri, "promoted", "champion", logged.uri)
    again = promote(f"runs:/{logged.run_id}/{MODEL_NAME}", "promoted", "champion", logged.uri)
    assert first == "promoted version 1 is now @champion; load it with models:/promoted@champion"
    assert again == "promoted version 1 is now @champion (already); load it with models:/promoted@champion"
    # MLflow reserves the alias "latest" (models:/NAME@latest always means the highest version)
    with pytest.raises(RetroGamerError, match="'latest' alias name .* is reserved"):
        promote(f"models:/{name}/1", name, "latest", logged.uri)


def test_second_download_of_a_uri_is_served_from_the_cache(logged):
    uri = f"models:/{NAME}/{register_policy(logged.client, logged.model_uri, NAME)}"  # not downloaded before
    started = time.perf_counter()
    first = download_policy(uri, logged.uri)
    middle = time.perf_counter()
    again = download_policy(uri, logged.uri)
    cached = time.perf_counter() - middle
    print(f"\ndownload_policy: first {1000 * (middle - started):.1f} ms, cached {1000 * cached:.3f} ms")
    assert again == first and (first / "config.toml").is_file() and (first / "checkpoints" / "ep_0006.pt").is_file()


def test_relative_game_paths_become_absolute_in_the_logged_config(logged, trained_snake: Path, tmp_path: Path):
    run = tmp_path / "project" / "runs" / "mine"
    shutil.copytree(trained_snake, run, ignore=shutil.ignore_patterns("replay", "resume.pt"))
    config = run / "config.toml"
    relative = config.read_text().replace('"retro.examples.snake:create_game"', '"../../snake_game.py:create_game"')
    config.write_text(relative)
    run_id = logged.client.create_run(experiment_id(logged.client, "snake", logged.uri)).info.run_id
    folder = download_policy(log_policy_model(logged.client, run_id, run, latest_checkpoint(run)), logged.uri)
    factory = tomllib.loads((folder / "config.toml").read_text())["game"]["factory"]
    assert factory == f"{(tmp_path / 'project' / 'snake_game.py').resolve().as_posix()}:create_game"
    kept = tomllib.loads((download_policy(logged.model_uri, logged.uri) / "config.toml").read_text())["game"]["factory"]
    assert kept == "retro.examples.snake:create_game"  # a module name stays as it is


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "uri, says",
    [
        ("models:/", "is not a model URI"),
        ("runs:/only-a-run-id", "is not a model URI"),
        ("models:/no-such-policy/1", f"there is no registered model 'no-such-policy'. Registered models: .*{NAME}"),
        (f"models:/{NAME}/99", f"no version 99 of '{NAME}': '{NAME}' has versions 1.* and aliases @{NEWEST_ALIAS}"),
        (f"models:/{NAME}@gold", f"no alias '@gold' of '{NAME}'.* aliases @{NEWEST_ALIAS}"),
        ("models:/m-00000000000000000000000000000000", "no logged model with id"),
        ("runs:/0123456789abcdef/policy", "no run with id '0123456789abcdef'"),
    ],
)
def test_a_uri_that_names_nothing_says_what_exists(logged, uri: str, says: str):
    with pytest.raises(RetroGamerError, match=says) as caught:
        TrainedPolicy(uri, tracking_uri=logged.uri)
    assert uri in str(caught.value)


def test_an_unreachable_server_fails_within_seconds():
    server = f"http://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with pytest.raises(RetroGamerError, match=f"models:/{NAME}/1.*{server} could not be used"):
        TrainedPolicy(f"models:/{NAME}/1", tracking_uri=server)
    assert time.perf_counter() - started < 15


def test_a_missing_store_is_reported_not_created(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(tmp_path / "mlflow.db"))
    with pytest.raises(RetroGamerError, match="there is no MLflow store at"):
        TrainedPolicy(f"models:/{NAME}@champion")  # the store comes from MLFLOW_TRACKING_URI
    assert not (tmp_path / "mlflow.db").exists()


def test_a_checkpoint_cannot_be_picked_inside_a_model(logged):
    with pytest.raises(RetroGamerError, match="holds exactly one checkpoint"):
        TrainedPolicy(logged.model_uri, checkpoint="ep_0003", tracking_uri=logged.uri)


def test_importing_the_policy_module_does_not_import_mlflow():
    code = "import sys, retro_gamer.policy; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
