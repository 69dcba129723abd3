"""TrainedPolicy and PolicyInput on real games, as the integration page uses them."""

from __future__ import annotations

import importlib.util
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from retro.examples.snake import create_game
from retro.input import ProgrammaticInput
from retro.views import HeadlessView

from retro_gamer import PolicyInput, TrainedPolicy
from retro_gamer.config.schema import ModelConfig, ModelKind, read_config, to_toml_dict, write_config
from retro_gamer.dqn.network import QNetwork
from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.policy import NumpyForward
from retro_gamer.run import checkpoint

KEYS = {"KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None}


def test_loads_latest_by_default_or_the_named_checkpoint(trained_snake: Path):
    assert TrainedPolicy(trained_snake).checkpoint_path.name == "ep_0006.pt"
    assert TrainedPolicy(str(trained_snake) + "/", checkpoint="ep_0003").episode == 3
    assert TrainedPolicy(trained_snake, checkpoint="ep_0003.pt").episode == 3
    path = trained_snake / "checkpoints" / "ep_0003.pt"
    assert TrainedPolicy(trained_snake, checkpoint=path).checkpoint_path == path


def test_get_action_works_with_any_view_and_matches_q_values(trained_snake: Path):
    ai = TrainedPolicy(trained_snake)
    random.seed(0)
    game = create_game()  # no view at all, as inside game.play() before the TerminalView renders
    key = ai.get_action(game)
    assert key in KEYS
    q = ai.q_values(game)
    assert q.shape == (5,) and ai.keys[int(np.argmax(q))] == key
    assert ai.act(game, epsilon=1.0) in KEYS


def test_policy_input_drives_a_game_headless_for_hundreds_of_turns(trained_snake: Path):
    ai = TrainedPolicy(trained_snake)
    random.seed(1)
    turns = 0
    while turns < 300:
        game = create_game()
        game.input_source, game.view = PolicyInput(ai, game), HeadlessView()
        game.start()
        while game.playing and turns < 300:
            before = game.get_agent_by_name("Snake head").position
            game.step()
            turns += 1
        assert game.get_agent_by_name("Snake head").position != before or not game.playing
    assert turns == 300


def test_policy_input_presses_the_policy_key(trained_snake: Path):
    ai = TrainedPolicy(trained_snake)
    game = create_game()
    pressed = PolicyInput(ai, game).collect()
    expected = ai.get_action(game)
    assert {k.name for k in pressed} == ({expected} if expected else set())


def test_two_policies_are_independent(trained_snake: Path):
    a, b = TrainedPolicy(trained_snake, checkpoint="ep_0003"), TrainedPolicy(trained_snake)
    assert a.network is not b.network
    assert not all(torch.equal(x, y) for x, y in zip(a.network.state_dict().values(), b.network.state_dict().values()))


def test_gpu_checkpoints_load_on_cpu_and_loading_runs_no_code(trained_snake: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_snake, run)
    payload = checkpoint.load(checkpoint.latest_checkpoint(run))
    payload["evil"] = _Evil()  # an object that would run code if unpickled
    torch.save(payload, run / "checkpoints" / "ep_0009.pt")
    with pytest.raises(RetroGamerError, match="ep_0009.pt is corrupted or not a retro-gamer checkpoint"):
        TrainedPolicy(run)
    assert not (tmp_path / "pwned").exists()


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "pwned",))


def test_a_checkpoint_from_another_setup_is_a_was_now_message(trained_snake: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_snake, run)
    cfg = read_config(run)
    cfg.model.hidden = [64]
    write_config(cfg, run)
    with pytest.raises(IncompatibleRunError, match=r"model.hidden was \[32\], now \[64\]"):
        TrainedPolicy(run)


def test_not_a_run_directory(tmp_path: Path):
    with pytest.raises(RetroGamerError, match="does not exist"):
        TrainedPolicy(tmp_path / "missing")


def _load_example(name: str):
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_snakes_example_runs_headless(trained_snake: Path, monkeypatch):
    monkeypatch.chdir(trained_snake.parent.parent)  # the example loads runs/snake/
    example = _load_example("two_snakes")
    asked = []  # what the AI snake's policy answered, turn by turn (a tiny run's choices, whatever they are)
    real = example._ai.get_action
    monkeypatch.setattr(example._ai, "get_action", lambda game: asked.append(real(game)) or asked[-1])
    random.seed(5)
    human_keys = ProgrammaticInput()
    turns = 0
    for _ in range(5):
        game = example.create_game()
        game.input_source, game.view = human_keys, HeadlessView()
        game.start()
        while game.playing and game.turn_number < 200:
            human_keys.press(random.choice(["KEY_RIGHT", "KEY_DOWN", None]))
            game.step()
            turns += 1
    assert len(asked) == turns > 5  # the AI snake asked its policy every turn it played
    assert set(asked) <= {"KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None}


def test_watch_snake_example_plays_in_a_terminal(trained_snake: Path):
    import sys

    from conftest import REPO, run_in_terminal

    out = run_in_terminal(
        [sys.executable, str(REPO / "examples" / "watch_snake.py"), str(trained_snake)], cwd=trained_snake
    )
    assert "score" in out and "energy" in out


def test_a_custom_observation_function_trains_and_drives_a_policy(tmp_path: Path, user_game: Path, monkeypatch):
    from dataclasses import replace

    from conftest import TINY
    from omegaconf import OmegaConf

    from retro_gamer.config.compose import compose_app
    from retro_gamer.config.schema import AppConfig, RunConfig
    from retro_gamer.games import description_from_pyproject
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    monkeypatch.chdir(user_game)
    desc = replace(description_from_pyproject("my_game.py"), observation_function="my_game:observe")
    app: AppConfig = OmegaConf.to_object(compose_app([*TINY, "trainer.episodes=4"]))
    run = user_game / "runs" / "custom"
    cfg = prepare_run(RunConfig(game=desc, model=app.model, trainer=app.trainer), run, "test")
    train_run(run, cfg, progress=False)
    ai = TrainedPolicy(run)
    assert checkpoint.load(ai.checkpoint_path)["observation"]["extras_size"] == 2
    import my_game

    game = my_game.create_game()
    assert ai.q_values(game).shape == (3,) and ai.get_action(game) in {"KEY_LEFT", "KEY_RIGHT", None}


# -- the fast path: get_action in numpy on the calling thread ----------------------------------------

MODELS = {
    "mlp": ModelConfig(kind=ModelKind.mlp, hidden=[32, 16]),
    "mlp without hidden layers or dueling": ModelConfig(kind=ModelKind.mlp, hidden=[], dueling=False),
    "cnn_small": ModelConfig(kind=ModelKind.cnn, channels=[8, 16], strides=[1, 2], hidden=[32]),
    "cnn of three strided layers": ModelConfig(
        kind=ModelKind.cnn, channels=[4, 6, 5], strides=[2, 1, 3], hidden=[8], dueling=False
    ),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("board_shape, extras_size", [((11, 11), 2), ((7, 10), 0), ((0, 0), 3)])
def test_numpy_forward_matches_torch_over_random_observations(
    name: str, board_shape: tuple[int, int], extras_size: int
):
    torch.manual_seed(0)
    q = QNetwork(MODELS[name], board_shape, n_classes=6, extras_size=extras_size, n_actions=5).eval()
    forward = NumpyForward(q)
    rng = np.random.default_rng(0)
    boards = rng.integers(0, 6, (500, *board_shape), dtype=np.uint8)
    extras = rng.normal(size=(500, extras_size)).astype(np.float32)
    with torch.inference_mode():
        expected = q(torch.from_numpy(boards), torch.from_numpy(extras)).numpy()
    got = np.stack([forward(board, extra).copy() for board, extra in zip(boards, extras)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def _cnn_run(trained_snake: Path, tmp_path: Path) -> Path:
    """A copy of the snake run whose checkpoint holds a cnn_small network (untrained weights: the fast path must
    give the same actions whatever the weights)."""
    run = tmp_path / "cnn_run"
    shutil.copytree(trained_snake, run)
    cfg = read_config(run)
    cfg.model = MODELS["cnn_small"]
    write_config(cfg, run)
    path = checkpoint.latest_checkpoint(run)
    payload = checkpoint.load(path)
    torch.manual_seed(1)
    payload["weights"] = QNetwork.from_dims(cfg.model, payload["observation"]).state_dict()
    payload["config"] = to_toml_dict(read_config(run))
    torch.save(payload, path)
    return run


def _torch_action(ai: TrainedPolicy, game) -> str | None:
    obs = ai.encoder.encode(game, rendered=False)
    with torch.inference_mode():
        q = ai.network(torch.from_numpy(obs.board)[None], torch.from_numpy(obs.extras)[None])
    return ai.keys[int(q.argmax())]


@pytest.mark.parametrize("kind", ["mlp", "cnn_small"])
def test_get_action_is_the_torch_networks_action_through_many_games(kind: str, trained_snake: Path, tmp_path: Path):
    ai = TrainedPolicy(trained_snake if kind == "mlp" else _cnn_run(trained_snake, tmp_path))
    assert ai.config.model.kind.value == kind.removesuffix("_small")
    random.seed(2)
    turns, game = 0, None
    while turns < 1000:
        if game is None or not game.playing:
            game = create_game()
            game.input_source = ProgrammaticInput()
            game.start()
        key = ai.get_action(game)
        assert key == _torch_action(ai, game)
        game.input_source.press(random.choice([key, "KEY_UP", "KEY_LEFT"]))  # wander beyond the policy's own games
        game.step()
        turns += 1


def test_get_action_leaves_torch_and_blas_thread_counts_as_they_were(trained_snake: Path):
    from threadpoolctl import threadpool_info, threadpool_limits

    ai = TrainedPolicy(trained_snake)
    game = create_game()
    before = torch.get_num_threads()
    try:
        for threads in (3, 1):
            torch.set_num_threads(threads)
            with threadpool_limits(limits=threads, user_api="blas"):
                ai.get_action(game)
                ai.q_values(game)
                assert torch.get_num_threads() == threads
                assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == {threads}
    finally:
        torch.set_num_threads(before)


def test_q_values_are_the_callers_to_keep(trained_snake: Path):
    ai = TrainedPolicy(trained_snake)
    random.seed(3)
    game = create_game()
    first = ai.q_values(game)
    kept = first.copy()
    game.input_source = ProgrammaticInput()
    game.start()
    for _ in range(3):
        game.step()
    ai.q_values(game)
    np.testing.assert_array_equal(first, kept)


def test_the_folder_of_runs_names_the_runs_inside_it(tmp_path: Path):
    for name in ("snake", "gems"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "config.toml").write_text("")
    (tmp_path / "runs" / "notes").mkdir()  # not a run: not named
    source = f"{tmp_path}/runs/"
    runs = f"{tmp_path}/runs/gems, {tmp_path}/runs/snake"
    with pytest.raises(RetroGamerError) as err:
        TrainedPolicy(source)
    assert str(err.value) == f"{source} is not a run directory; it holds runs: {runs} — pass one of them."
