"""Loading and playing a trained model where Windows would: without ``fcntl``.

Training runs on Linux and macOS only, but a trained model must load and play on Windows, which has no
``fcntl``. These tests stand a Linux process in for it: a finder that refuses ``import fcntl`` as
Windows does goes in before anything is imported.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from retro.examples.snake import create_game

from retro_gamer import TrainedPolicy
from retro_gamer.run.checkpoint import latest_checkpoint
from retro_gamer.tracking.mlflow_model import log_policy_model, register_policy
from retro_gamer.tracking.store import experiment_id, open_store

WITHOUT_FCNTL = '''
import sys


class NoFcntl:
    """What Windows answers to `import fcntl`."""

    def find_spec(self, name, path=None, target=None):
        if name == "fcntl":
            raise ModuleNotFoundError("No module named 'fcntl'", name="fcntl")
        return None


sys.modules.pop("fcntl", None)
sys.meta_path.insert(0, NoFcntl())
'''

LOAD_AND_PLAY = (
    WITHOUT_FCNTL
    + """
import contextlib
import io
import json
import random
import warnings

warnings.simplefilter("ignore")  # blessed warns that it has no terminal control without fcntl
import retro_gamer.tracking.mlflow_model  # noqa: F401
import retro_gamer.tracking.store  # noqa: F401
from retro.examples.snake import create_game
from retro.views import HeadlessView

from retro_gamer.cli.app import main
from retro_gamer.policy import PolicyInput, TrainedPolicy

run_dir, uri = sys.argv[1], sys.argv[2]
from_dir = TrainedPolicy(run_dir)
from_store = TrainedPolicy("models:/snake-policy@newest", tracking_uri=uri)
random.seed(5)
game = create_game()
q_values = [from_dir.q_values(game).tolist(), from_store.q_values(game).tolist()]

game = create_game()
game.input_source, game.view = PolicyInput(from_store, game), HeadlessView()
game.start()
while game.playing and game.turn_number < 20:
    game.step()

printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    code = main(["eval", "models:/snake-policy@newest", "--tracking-uri", uri, "--episodes", "2", "--json"])
print(json.dumps({"q_values": q_values, "turns": game.turn_number, "eval_code": code,
                  "eval": json.loads(printed.getvalue()), "fcntl_loaded": "fcntl" in sys.modules}))
"""
)


def test_a_model_loads_plays_and_evaluates_without_fcntl(trained_snake: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = open_store(uri)  # the training side, which has fcntl, logs the model
    run_id = client.create_run(experiment_id(client, "snake", uri)).info.run_id
    register_policy(
        client, log_policy_model(client, run_id, trained_snake, latest_checkpoint(trained_snake)), "snake-policy"
    )

    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PLAY, str(trained_snake), uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    random.seed(5)
    expected = TrainedPolicy(trained_snake).q_values(create_game()).tolist()
    assert result["q_values"] == [expected, expected]
    assert result["turns"] >= 1 and result["eval_code"] == 0 and result["eval"]["episodes"] == 2
    assert not result["fcntl_loaded"]


def test_fcntl_is_refused_in_the_stand_in():
    """The stand-in really refuses fcntl, so the test above would catch a module-level import."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FCNTL + "import fcntl\n"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "No module named 'fcntl'" in done.stderr
