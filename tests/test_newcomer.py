"""A newcomer's first hour: did it learn (eval beside random play), a readable learning curve, errors that say
which name was meant, and progress lines that tell what will end the run and when it is only warming up."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TINY, run_module

from retro_gamer.cli import app as cli
from retro_gamer.config.compose import compose_app
from retro_gamer.dqn import callbacks
from retro_gamer.dqn.callbacks import ConsoleProgress, Window
from retro_gamer.errors import RetroGamerError

LONG_NUMBER = "1" + "0" * 5_000  # past Python's 4,300-digit limit on turning text into an int


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- eval: the random baseline and the keys pressed -------------------------------------------------------------
def test_eval_reports_random_play_beside_the_agent_and_the_keys_it_pressed(capsys, trained_snake: Path):
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy

    code, out, err = run_cli(capsys, "eval", str(trained_snake), "-n", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"episodes", "mean_return", "std_return", "mean_length", "final_state"} <= set(result)  # the old keys stay
    actions = ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", "no-op"]
    for played in (result, result["random_play"]):
        assert list(played["key_shares"]) == actions
        assert sum(played["key_shares"].values()) == pytest.approx(1.0)
    # the baseline is the same number of games from the same seed, every key at random
    policy = TrainedPolicy(trained_snake)
    random_play = evaluate(policy.config, policy.network, episodes=3, epsilon=1.0, base_dir=policy.run_dir)
    assert result["random_play"] == json.loads(json.dumps(random_play))

    code, out, err = run_cli(capsys, "eval", str(trained_snake), "-n", "3")
    assert code == 0, err
    assert "random play" in out and "key no-op" in out and "% of turns" in out and "standard errors" in out

    code, out, _ = run_cli(capsys, "eval", str(trained_snake), "-n", "2", "--json", "--no-baseline")
    assert code == 0 and "random_play" not in json.loads(out) and "key_shares" in json.loads(out)


# --- plot: the length panel is smoothed as the return panel is ----------------------------------------------------
def test_both_panels_draw_a_moving_average_over_faint_episodes():
    from retro_gamer.tracking.plots import draw_learning_curve, moving_average

    lengths = np.arange(200, dtype=float) % 7
    fig = draw_learning_curve(np.zeros(200), lengths, "test")
    returns_panel, lengths_panel = fig.axes
    for panel in (returns_panel, lengths_panel):
        raw, mean = panel.get_lines()
        assert mean.get_label() == "mean of 20" and raw.get_alpha() < 1 and raw.get_linewidth() < mean.get_linewidth()
    x, means, window = moving_average(lengths)
    assert window == 20 and x[0] == 20 and means[0] == pytest.approx(lengths[:20].mean())
    assert np.allclose(lengths_panel.get_lines()[1].get_ydata(), means)


# --- errors -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, meant",
    [
        ("model=mpl", "Did you mean 'model=mlp'?"),
        ("trainer=dq", "Did you mean 'trainer=dqn'?"),
        ("tracking=defualt", "Did you mean 'tracking=default'?"),
    ],
)
def test_a_mistyped_group_option_names_the_nearest(override: str, meant: str):
    with pytest.raises(RetroGamerError) as err:
        compose_app(["+game=snake", override])
    assert meant in str(err.value) and "Config search path" not in str(err.value)


def test_a_mistyped_group_option_at_both_entry_points(capsys, tmp_path: Path, monkeypatch):
    result = run_module(["-m", "retro_gamer.train", "+game=snak"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Did you mean '+game=snake'?" in result.stderr and "snake_plain" in result.stderr
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "create", "--game", "snake", "--output", "run", "model=cnn_smal")
    assert code == 2 and "Did you mean 'model=cnn_small'?" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_a_comma_at_create_is_a_list_not_a_sweep(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "create", "--game", "snake", "--output", "run", "trainer.time_limit=1,5")
    assert code == 2 and "add --multirun" not in err
    assert "one value per key" in err and "trainer.time_limit=1.5" in err and "trainer.time_limit=[1,5]" in err


def test_a_reward_given_on_the_command_line_is_blamed_on_the_command_line(capsys, user_game: Path, monkeypatch):
    monkeypatch.chdir(user_game)
    code, _, err = run_cli(capsys, "create", "--game", "my_game.py", "--output", "run", "game.reward=nosuchkey")
    assert code == 2 and "reward 'nosuchkey'" in err
    assert "command-line override game.reward=nosuchkey" in err
    result = run_module(
        ["-m", "retro_gamer.train", "+game=snake", "game.reward=nosuchkey", "run_dir=run"], cwd=user_game
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "conf/game/snake.yaml with the command-line override game.reward=nosuchkey" in result.stderr


def test_an_absurdly_long_number_is_a_clear_error_at_both_entry_points(capsys, tmp_path: Path, monkeypatch):
    result = run_module(["-m", "retro_gamer.train", "+game=snake", f"trainer.lr={LONG_NUMBER}"], cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (
        "trainer.lr" in result.stderr and "above 0 and at most 1" in result.stderr and LONG_NUMBER not in result.stderr
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "create", "--game", "snake", "--output", "run", f"model.hidden=[{LONG_NUMBER}]")
    assert code == 2 and "model.hidden" in err and "5,001 digits" in err and "from 1 to 65,536" in err


# --- the start line and warm-up ---------------------------------------------------------------------------------
def _trainer(**settings) -> SimpleNamespace:
    trainer = {"time_limit": None, "total_env_steps": None, "episodes": 20_000, "warmup_steps": 5_000, **settings}
    return SimpleNamespace(cfg=SimpleNamespace(trainer=SimpleNamespace(**trainer)), episode=0, env_steps=0)


def test_the_start_line_names_every_limit_that_ends_the_run():
    assert callbacks.stop_rule(_trainer()) == "until 20,000 episodes (now at episode 0)"
    assert callbacks.stop_rule(_trainer(time_limit=1.5)).startswith(
        "until 1.5 min or 20,000 episodes, whichever comes first"
    )
    budget = callbacks.stop_rule(_trainer(time_limit=1.5, total_env_steps=200_000))
    assert (
        budget
        == "until 1.5 min, 200,000 env steps or 20,000 episodes, whichever comes first (now at episode 0, 0 env steps)"
    )


def test_warm_up_speeds_are_labelled_as_warm_up():
    trainer = _trainer(warmup_steps=1_000)
    window = Window(1, 10, 0.0, 5.0, 1.0, None, env_steps=800, steps_per_s=33_000.0)
    share = callbacks.WarmupShare()
    share.start(trainer)
    assert window.line(share.of(trainer, window)).endswith("33,000 env steps/s (warm-up: random play, no learning yet)")
    later = Window(11, 20, 0.0, 5.0, 0.9, 0.5, env_steps=1_200, steps_per_s=9_000.0)
    assert "50% of them warm-up" in later.line(share.of(trainer, later))
    assert "warm-up" not in Window(21, 30, 0.0, 5.0, 0.8, 0.5, env_steps=1_500, steps_per_s=3_000.0).line(
        share.of(trainer, later)
    )


def test_a_time_limited_run_says_so_when_it_starts(tmp_path: Path):
    from retro_gamer.config.compose import run_config_from_hydra
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    overrides = [
        "+game=snake",
        *TINY,
        "trainer.episodes=2",
        "trainer.checkpoint_every=2",
        "trainer.time_limit=1",
        "trainer.warmup_steps=100000",
    ]
    run = tmp_path / "run"
    cfg = prepare_run(run_config_from_hydra(compose_app(overrides), "snake"), run, "snake")
    stream = io.StringIO()
    train_run(run, cfg, callbacks=[ConsoleProgress(stream)], progress=False)
    lines = stream.getvalue().splitlines()
    assert "until 1 min or 2 episodes, whichever comes first (now at episode 0)" in lines[0]
    assert lines[1].endswith("(warm-up: random play, no learning yet)")
    assert "until 1 min or 2 episodes" in (run / "training.log").read_text()


def test_the_live_bar_counts_the_limit_that_ends_the_run():
    assert callbacks.bar_limit(_trainer())[:2] == ("episodes", 20_000)
    assert callbacks.bar_limit(_trainer(time_limit=1.5))[:2] == ("seconds", 90)
    unit, total, done = callbacks.bar_limit(_trainer(time_limit=1.5, total_env_steps=200_000))
    assert (unit, total) == ("env steps", 200_000)
    assert done(SimpleNamespace(env_steps=1_234)) == 1_234  # counted on the run's counter


def test_a_step_budget_shows_on_the_live_bar_in_a_terminal(tmp_path: Path):
    from conftest import run_in_terminal

    out = run_in_terminal(
        [
            sys.executable,
            "-m",
            "retro_gamer.train",
            "+game=snake",
            *TINY,
            "trainer.total_env_steps=600",
            "trainer.episodes=100000",
            "run_dir=run",
        ],
        cwd=tmp_path,
    )
    assert "env steps" in out and "600/600" in out and "Trained" in out
