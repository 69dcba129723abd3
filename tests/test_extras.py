"""The core install, without extras, in a real virtual environment: a game author who only embeds a model gets
``TrainedPolicy`` and ``PolicyInput`` (no Hydra, MLflow, matplotlib, SciPy, rich or DVC), and the training faces
answer with the extra to install, in one line, instead of a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch
from conftest import REPO

from retro_gamer.errors import RetroGamerError
from retro_gamer.extras import EXTRAS, require, require_extra

TRAIN_HINT = "which comes with the [train] extra: pip install 'retro-gamer[train]'"
NOT_IN_CORE = ["hydra", "mlflow", "matplotlib", "scipy", "rich", "dvc"]

# Run by the core venv's python with the run directory as argv[1]: what a game that embeds a model does.
EMBED = """
import importlib.util
import json
import random
import sys

import retro_gamer
from retro_gamer import PolicyInput, TrainedPolicy
from retro_gamer.errors import RetroGamerError
from retro.examples.snake import create_game
from retro.views import HeadlessView

missing = [m for m in sys.argv[2:] if importlib.util.find_spec(m) is None]
ai = TrainedPolicy(sys.argv[1])
random.seed(0)
game = create_game()
first = ai.get_action(game)
game.input_source, game.view = PolicyInput(ai, game), HeadlessView()
game.start()
while game.playing and game.turn_number < 50:
    game.step()
try:
    TrainedPolicy("models:/snake-policy@champion")
    uri = "loaded"
except RetroGamerError as err:
    uri = str(err)
loaded = sorted(m for m in sys.argv[2:] if m in sys.modules)
print(json.dumps({"missing": missing, "first": first, "turns": game.turn_number, "uri": uri, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def core_python(tmp_path_factory) -> Path:
    """A fresh venv with ``pip install torch -e REPO`` and no extras (pip's own index settings, as the README's)."""
    folder = tmp_path_factory.mktemp("core") / "venv"
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"  # the build already here: pip finds it at once
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", torch_pin, "-e", str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    yield python
    shutil.rmtree(folder, ignore_errors=True)  # about 1 GB, mostly torch


def run_in(program: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``program`` (the core venv's python, or a script pip wrote there) with nothing of this process's venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HYDRA_FULL_ERROR")}
    return subprocess.run([str(program), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_core_install_loads_and_plays_a_trained_policy(core_python: Path, trained_snake: Path, tmp_path: Path):
    result = run_in(core_python, ["-c", EMBED, str(trained_snake), *NOT_IN_CORE], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["missing"] == NOT_IN_CORE  # the core install really lacks every extra's packages
    assert seen["first"] in {"KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None}
    assert seen["turns"] > 0 and seen["loaded"] == []
    assert seen["uri"] == f"The model URI models:/snake-policy@champion needs MLflow, {TRAIN_HINT}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, face",
    [
        (["-m", "retro_gamer.train", "+game=snake"], "python -m retro_gamer.train"),
        (["-m", "retro_gamer.cli", "--help"], "retro-gamer"),
        (["retro-gamer", "--help"], "retro-gamer"),
    ],
    ids=["python-m-train", "python-m-cli", "retro-gamer-script"],
)
def test_a_training_face_names_the_extra_to_install(core_python: Path, tmp_path: Path, args: list[str], face: str):
    if args[0] == "retro-gamer":  # the console script pip wrote, as a user types it
        result = run_in(core_python.parent / "retro-gamer", args[1:], tmp_path)
    else:
        result = run_in(core_python, args, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == f"error: {face} needs Hydra, {TRAIN_HINT}\n"
    assert not list(tmp_path.iterdir())  # nothing made (no Hydra output folder)


def test_a_missing_module_names_its_extra_and_what_needed_it():
    with pytest.raises(RetroGamerError) as caught:
        require("no_such_module_for_retro_gamer", "train", "retro-gamer train")
    assert str(caught.value) == f"retro-gamer train needs no_such_module_for_retro_gamer, {TRAIN_HINT}"
    with pytest.raises(
        RetroGamerError, match=r"^The pipeline needs no_such_parent.child, which comes with the \[dvc\]"
    ):
        require("no_such_parent.child", "dvc", "The pipeline")  # a dotted name whose parent is missing
    require_extra("train", "this test")  # the development install has every extra
    assert set(EXTRAS) == {"train", "dvc", "gym", "sb3", "pettingzoo", "tune", "db", "slurm"}


def test_pyproject_extras_match_the_modules_retro_gamer_checks():
    from retro_gamer.compat import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    assert extras["all"] == ["retro-gamer[train,dvc,gym,sb3,pettingzoo,tune,db,slurm]"]
    assert {"pytest", "ruff", "mypy", "import-linter"} <= {d.split(">")[0].split("=")[0] for d in extras["dev"]}
    assert "retro-games>=2.5.0,<3" in project["dependencies"]
    for extra, modules in EXTRAS.items():
        listed = " ".join(extras[extra])
        for name in modules.values():
            package = {
                "Hydra": "hydra-core",
                "Hydra's joblib launcher": "hydra-joblib-launcher",
                "Hydra's submitit launcher": "hydra-submitit-launcher",
                "psycopg2": "psycopg2-binary",
                "Flask-WTF": "mlflow[auth]",
            }.get(name, name)
            assert package.lower() in listed.lower(), (extra, package)
            assert package.lower() not in core.lower(), package


@pytest.mark.parametrize(
    "missing, use, says",
    [
        (
            "gymnasium",
            "import retro_gamer.adapters.gymnasium_env",
            "A game as a Gymnasium environment (retro_gamer.adapters) needs Gymnasium, which comes with the [gym] "
            "extra: pip install 'retro-gamer[gym]'",
        ),
        (
            "pettingzoo",
            "from retro_gamer.examples import chase; chase.parallel_env()",
            "A game as a PettingZoo environment (retro_gamer.adapters) needs PettingZoo, which comes with the "
            "[pettingzoo] extra: pip install 'retro-gamer[pettingzoo]'",
        ),
        (
            "stable_baselines3",
            "import retro_gamer.adapters.sb3_tracking",
            "Tracking a Stable-Baselines3 run in MLflow (retro_gamer.adapters.sb3_tracking) needs Stable-Baselines3, "
            "which comes with the [sb3] extra: pip install 'retro-gamer[sb3]'",
        ),
        (
            "optuna",
            "from retro_gamer.cli.app import cmd_tune; cmd_tune(None)",
            "retro-gamer tune needs Optuna, which comes with the [tune] extra: pip install 'retro-gamer[tune]'",
        ),
        (
            "psycopg",
            "from retro_gamer.tune.study import storage_for; storage_for('postgresql://me:secret@127.0.0.1/studies')",
            "the study storage postgresql://me:***@127.0.0.1/studies needs the database driver psycopg, which is not "
            "installed. For PostgreSQL it comes with the [db] extra: pip install 'retro-gamer[db]'",
        ),
    ],
    ids=["gym", "pettingzoo", "sb3", "tune", "db"],
)
def test_without_an_ecosystem_library_the_package_imports_and_its_adapter_names_the_extra(
    tmp_path: Path, missing: str, use: str, says: str
):
    """``import retro_gamer`` works without the library (registration is guarded); using the adapter names the extra."""
    program = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # as if not installed: importing it fails, finding it finds nothing\n"
        "import retro_gamer\n"
        "from retro_gamer.errors import RetroGamerError\n"
        "try:\n"
        f"    {use}\n"
        "except RetroGamerError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == says + "\n"
