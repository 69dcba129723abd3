"""Every retro-gamer command through its real console-script entry point, and each error message."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import TINY, run_in_terminal

CLI = str(Path(sys.executable).parent / "retro-gamer")
TINY_RUN = [*TINY, "trainer.episodes=4", "trainer.checkpoint_every=2"]

# A user's game played headless by its trained model, as a script in the game's folder would.
PLAY_HEADLESS = """
import sys
from retro.input import ProgrammaticInput
from retro.views import HeadlessView
from my_game import create_game
from retro_gamer import PolicyInput
from retro_gamer import TrainedPolicy

ai = TrainedPolicy(sys.argv[1])
turns = 0
for _ in range(3):
    game = create_game()
    game.input_source, game.view = PolicyInput(ai, game), HeadlessView()
    game.start()
    while game.playing and game.turn_number < 30:
        game.step()
        turns += 1
print(turns)
"""


def cli(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


def at_once(*calls):
    """Independent processes run side by side: each spends ~3 s importing torch on one core;
    run together, they use every core. Returns each call's result, in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def cli_at_once(*commands: tuple[str, ...], cwd: Path, **kwargs) -> list[subprocess.CompletedProcess]:
    """Independent retro-gamer commands side by side, each in its own process as a user would run it."""
    return at_once(*(lambda args=args: cli(*args, cwd=cwd, **kwargs) for args in commands))


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fails_cleanly(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    return result.stderr


def test_help_lists_every_command_with_examples(tmp_path: Path):
    out = ok(cli("--help", cwd=tmp_path))
    for command in ("create", "train", "eval", "play", "info", "plot", "replay", "promote", "clean"):
        assert command in out
        assert "example:" in ok(cli(command, "--help", cwd=tmp_path))


def test_create_train_eval_info_plot_clean_on_snake(tmp_path: Path):
    out = ok(cli("create", "--game", "snake", "--output", "runs/snake", *TINY_RUN, cwd=tmp_path))
    for field in (
        "board       32x16",
        "actions     KEY_RIGHT",
        "reward      change of game.state['reward']",
        "11x11 window around 'Snake head'",
        "network     mlp",
        "parameters",
    ):
        assert field in out
    # a second create is refused before it touches anything, so it can run beside the first training
    refused, trained = cli_at_once(
        ("create", "--game", "snake", "--output", "runs/snake"), ("train", "runs/snake"), cwd=tmp_path
    )
    fails_cleanly(refused, "already exists", "--force")

    ok(trained)
    assert (tmp_path / "runs/snake/checkpoints/ep_0004.pt").is_file()
    with ThreadPoolExecutor(1) as pool:
        # ep_0004 stays as it is while training goes on: evaluating it twice (same seed, same result) runs meanwhile,
        # one after the other on the core training leaves free
        evals = [
            pool.submit(cli, "eval", "runs/snake", "--episodes", "3", "--json", "-c", "ep_0004", cwd=tmp_path)
            for _ in range(2)
        ]
        assert "finished 4 episodes; training 4 more (to 8)" in ok(cli("train", "runs/snake", cwd=tmp_path))
        assert json.loads((tmp_path / "runs/snake/metrics.json").read_text())["episodes"] == 8
        assert "already has 8 episodes" in ok(cli("train", "runs/snake", "--episodes", "6", cwd=tmp_path))
        ok(cli("train", "runs/snake", "--episodes", "10", cwd=tmp_path))
        assert json.loads((tmp_path / "runs/snake/metrics.json").read_text())["episodes"] == 10
        first, again = (e.result() for e in evals)
    result = json.loads(ok(first))
    assert set(result) == {
        "episodes",
        "mean_return",
        "std_return",
        "mean_length",
        "final_state",
        "key_shares",
        "random_play",
    }
    assert result["episodes"] == 3 and "score" in result["final_state"]
    assert json.loads(ok(again)) == result  # same seed, same episodes

    # training is over: the commands that only read the run go side by side (clean without -y deletes nothing)
    plain, info, plot, unconfirmed = cli_at_once(
        ("eval", "runs/snake", "-n", "2", "--epsilon", "0.5", "--seed", "3"),
        ("info", "runs/snake"),
        ("plot", "runs/snake", "-o", "curve.png"),
        ("clean", "runs/snake"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert "return" in ok(plain)

    info = ok(info)
    assert "ep_0010" in info and "episode 10" in info and "Resume state: episode 10" in info
    assert (
        "chosen      sees a 11x11 window around 'Snake head' as the description says" in info
    )  # config.toml's [chosen]

    ok(plot)
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"

    fails_cleanly(unconfirmed, "pass -y")
    ok(cli("clean", "runs/snake", "-y", cwd=tmp_path))
    assert not (tmp_path / "runs/snake/checkpoints").exists() and (tmp_path / "runs/snake/config.toml").is_file()


@pytest.mark.parametrize("module, networks", [("retro.examples.nav", ["mlp"]), ("retro.examples.beast", ["cnn_small"])])
def test_published_games_create_from_their_pyproject_and_train(tmp_path: Path, module: str, networks: list[str]):
    out = ok(cli("create", "--game", module, "--output", "run", *TINY_RUN, "model.channels=[4,8]", cwd=tmp_path))
    assert "window around" in out and any(f"model={network}" in out for network in networks)
    ok(cli("train", "run", "--episodes", "2", cwd=tmp_path))
    assert json.loads((tmp_path / "run/metrics.json").read_text())["episodes"] == 2


def test_a_user_game_by_path_and_by_module_factory(tmp_path: Path, user_game: Path):
    # the two runs are independent: each step of theirs runs side by side
    by_path, by_module = cli_at_once(
        ("create", "--game", "my_game.py", "--output", "runs/by_path", *TINY_RUN),
        ("create", "--game", "my_game:create_game", "--output", "runs/by_module", *TINY_RUN, "game.max_turns=20"),
        cwd=user_game,
    )
    out = ok(by_path)
    assert "my_game.py" in out and "network     mlp" in out
    ok(by_module)
    runs = ("runs/by_path", "runs/by_module")
    for trained in cli_at_once(*(("train", run) for run in runs), cwd=user_game):
        ok(trained)
    *evaluated, played, bad = at_once(
        *(lambda run=run: cli("eval", run, "--episodes", "4", "--json", cwd=user_game) for run in runs),
        lambda: subprocess.run(
            [sys.executable, "-c", PLAY_HEADLESS, "runs/by_path"], cwd=user_game, capture_output=True, text=True
        ),
        lambda: cli("create", "--game", "my_game:not_a_game", "--output", "runs/bad", cwd=user_game),
    )
    for result in evaluated:
        result = json.loads(ok(result))
        assert result["episodes"] == 4 and "points" in result["final_state"]
    assert "max_turns = 20" in (user_game / "runs/by_module/config.toml").read_text()
    assert played.returncode == 0 and int(played.stdout) > 0, played.stderr
    fails_cleanly(bad, "returned int, not a retro.game.Game")
    assert not (user_game / "runs" / "bad").exists()


def test_play_draws_in_a_terminal_and_refuses_without_one(tmp_path: Path, trained_snake: Path):
    fails_cleanly(cli("play", str(trained_snake), cwd=tmp_path), "needs a terminal", "retro-gamer eval")
    out = run_in_terminal([CLI, "play", str(trained_snake), "--framerate", "200"], cwd=tmp_path)
    assert "score" in out  # the state pane of retro's TerminalView


# --- errors: one paragraph, exit 1-2, never a traceback --------------------------------------
def test_a_run_dir_that_does_not_exist(tmp_path: Path):
    # four of the five import torch (~3 s) before they look for the folder, so they run side by side
    commands = ("train", "eval", "info", "plot", "clean")
    for command, result in zip(commands, cli_at_once(*((c, "runs/nope") for c in commands), cwd=tmp_path)):
        assert result.args[1] == command
        fails_cleanly(result, "does not exist")


def test_missing_config_toml(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    fails_cleanly(cli("train", "empty", cwd=tmp_path), "no config.toml")


def test_malformed_config_toml_says_the_line(tmp_path: Path, trained_snake: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_snake, run)
    text = (run / "config.toml").read_text().replace('reward = "reward"', "reward = reward")
    (run / "config.toml").write_text(text)
    fails_cleanly(cli("eval", "run", cwd=tmp_path), "config.toml", "line")


def test_unknown_checkpoint_lists_the_available_ones(tmp_path: Path, trained_snake: Path):
    fails_cleanly(
        cli("eval", str(trained_snake), "-c", "ep_0500", cwd=tmp_path), "ep_0500", "Available: ep_0003, ep_0006"
    )


def test_game_module_not_importable_shows_the_error_and_a_path_hint(tmp_path: Path, trained_snake: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_snake, run)
    text = (run / "config.toml").read_text().replace("retro.examples.snake:create_game", "moved_away.snake:create_game")
    (run / "config.toml").write_text(text)
    created, trained = cli_at_once(
        ("create", "--game", "no_such_game:create_game", "--output", "x"),
        ("train", "run", "--episodes", "8"),
        cwd=tmp_path,
    )
    fails_cleanly(created, "Cannot import game module 'no_such_game'", "Python looked in")
    fails_cleanly(trained, "Cannot import game module 'moved_away.snake'")


def test_truncated_checkpoint_names_the_file_and_suggests_the_previous(tmp_path: Path, trained_snake: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_snake, run)
    latest = run / "checkpoints" / "ep_0006.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    latest_fails, previous = cli_at_once(("eval", "run"), ("eval", "run", "-c", "ep_0003", "-n", "2"), cwd=tmp_path)
    fails_cleanly(latest_fails, "ep_0006.pt is corrupted", "previous one: ep_0003.pt")
    ok(previous)


def test_replay_writes_a_page_and_a_transcript(tmp_path: Path, trained_snake: Path):
    out = ok(
        cli(
            "replay",
            str(trained_snake),
            "--checkpoint",
            "ep_0003",
            "-o",
            "snake.html",
            "--max-turns",
            "50",
            cwd=tmp_path,
        )
    )
    assert "Wrote snake.html and snake.txt" in out
    page, transcript = (tmp_path / "snake.html").read_text(), (tmp_path / "snake.txt").read_text()
    assert page.startswith("<!DOCTYPE html>") and "ep_0003" in page and "turn 1" in transcript


def test_a_tracked_policy_is_evaluated_promoted_and_replayed_by_uri(tmp_path: Path, trained_snake: Path):
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.tracking import store
    from retro_gamer.tracking.mlflow_model import log_policy_model, register_policy

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = store.open_store(uri)
    run = client.create_run(store.experiment_id(client, "snake", uri))
    model = log_policy_model(client, run.info.run_id, trained_snake, trained_snake / "checkpoints" / "ep_0006.pt")
    register_policy(client, model, "snake-policy")
    local = TrainedPolicy(trained_snake)
    by_dir = evaluate(local.config, local.network, episodes=3, seed=12345, base_dir=local.run_dir, baseline=True)
    # each command imports torch and MLflow (~8 s); the three that do not depend on each other run side by side
    by_uri, promoted, missing = cli_at_once(
        ("eval", "models:/snake-policy/1", "-n", "3", "--json", "--tracking-uri", uri),
        ("promote", "models:/snake-policy/1", "--name", "snake-policy", "--alias", "champion", "--tracking-uri", uri),
        ("eval", "models:/no-such-model@champion", "--tracking-uri", uri),
        cwd=tmp_path,
    )
    assert json.loads(ok(by_uri)) == json.loads(json.dumps(by_dir))
    assert "snake-policy version 1 is now @champion" in ok(promoted)
    fails_cleanly(missing, "no-such-model")
    assert "Wrote" in ok(
        cli("replay", "models:/snake-policy@champion", "-o", "c.html", "--tracking-uri", uri, cwd=tmp_path)
    )
