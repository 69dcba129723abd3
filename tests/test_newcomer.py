"""A newcomer's first hour: did it learn (eval beside random play), a readable learning curve, errors that say
which name was meant, and progress lines that tell what will end the run and when it is only warming up."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import TINY, run_module
from retro_gamer import callbacks, cli
from retro_gamer.callbacks import ConsoleProgress, Window
from retro_gamer.compose import compose_app
from retro_gamer.errors import RetroGamerError

LONG_NUMBER = "1" + "0" * 5_000  # past Python's 4,300-digit limit on turning text into an int


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- eval: the random baseline and the keys pressed -------------------------------------------------------------
def test_eval_reports_random_play_beside_the_agent_and_the_keys_it_pressed(capsys, trained_snake: Path):
    from retro_gamer.evaluate import evaluate
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
    from retro_gamer.plots import draw_learning_curve, moving_average

    lengths = np.arange(200, dtype=float) % 7
    fig = draw_learning_curve(np.zeros(200), lengths, "test")
    returns_panel, lengths_panel = fig.axes
    for panel in (returns_panel, lengths_panel):
        raw, mean = panel.get_lines()
        assert mean.get_label() == "mean of 20" and raw.get_alpha() < 1 and raw.get_linewidth() < mean.get_linewidth()
    x, means, window = moving_average(lengths)
    assert window == 20 and x[0] == 20 and means[0] == pytest.approx(lengths[:20].mean())
    assert np.allclose(lengths_panel.get_lines()[1].get_ydata(), means)
