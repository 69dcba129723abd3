"""The Hydra config tree, composed through the compose API, and config.toml in and out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.config.schema import (
    ModelKind,
    RunConfig,
    available_games,
    from_toml_dict,
    read_config,
    to_toml_dict,
    write_config,
)
from retro_gamer.errors import ConfigError, RetroGamerError


def composed(overrides: list[str]):
    return compose_app(overrides)


def test_plus_game_selects_the_snake_description():
    cfg = composed(["+game=snake"])
    assert cfg.game.factory == "retro.examples.snake:create_game"
    assert cfg.model.kind == ModelKind.mlp
    assert cfg.run_dir == "runs/snake"
    run = run_config_from_hydra(cfg, "snake")
    assert run.game.crop.agent == "Snake head" and run.game.crop.radius == 5


def test_groups_and_overrides_compose():
    cfg = composed(["+game=snake", "model=cnn", "trainer.lr=1e-3", "trainer.seed=3", "tracking.enabled=true"])
    run = run_config_from_hydra(cfg, "snake")
    assert run.model.kind == ModelKind.cnn and run.model.channels == [32, 64]
    assert run.trainer.lr == pytest.approx(1e-3) and run.trainer.seed == 3
    assert run.tracking.enabled is True


@pytest.mark.parametrize(
    "override, says",
    [
        ("trainer.lrr=1", "Did you mean 'trainer.lr'?"),
        ("model.hiden=[8]", "Did you mean 'model.hidden'?"),
        ("trainer.episodes=many", "could not be converted to Integer"),
        ("model.kind=rnn", "Invalid value 'rnn', expected one of [mlp, cnn]"),
    ],
)
def test_typos_and_bad_types_are_rejected(override, says):
    with pytest.raises(RetroGamerError) as err:
        composed(["+game=snake", override])
    assert says in str(err.value) and override.split("=")[0] in str(err.value)


def test_no_game_lists_the_available_ones():
    cfg = composed([])
    assert cfg.game is None
    with pytest.raises(ConfigError) as err:
        run_config_from_hydra(cfg, None)
    assert "+game=NAME" in str(err.value) and "snake" in str(err.value)
    assert "snake" in available_games()


def test_game_group_is_absent_from_defaults_so_plus_is_required():
    with pytest.raises(RetroGamerError, match="append"):
        composed(["game=snake"])


def test_unknown_game_key_in_yaml_is_named_with_a_suggestion():
    cfg = composed(["+game=snake", "+game.rewrd=score"])
    with pytest.raises(ConfigError) as err:
        run_config_from_hydra(cfg, "snake")
    assert "conf/game/snake.yaml" in str(err.value)
    assert "'rewrd'" in str(err.value) and "Did you mean 'reward'" in str(err.value)


def _snake_run() -> RunConfig:
    """Snake as prepare_run leaves it: the board size discovered from the game (snake.yaml lists the characters)."""
    run = run_config_from_hydra(composed(["+game=snake", "trainer.lr=3e-4"]), "snake")
    return replace(run, game=replace(run.game, board_size=(32, 16)))


def test_config_toml_round_trips_in_the_published_section_layout(tmp_path: Path):
    run = _snake_run()
    write_config(run, tmp_path)
    text = (tmp_path / "config.toml").read_text()
    for section in ("[game]", "[metadata]", "[preprocessing]", "[model]", "[training]"):
        assert section in text
    again = read_config(tmp_path)
    assert to_toml_dict(again) == to_toml_dict(run)
    assert again.trainer.lr == pytest.approx(3e-4)


def test_config_toml_problems_are_all_reported_with_suggestions(tmp_path: Path):
    doc = to_toml_dict(_snake_run())
    doc["training"]["lrr"] = 1
    doc["training"]["episodes"] = "lots"
    doc["metadata"]["crop"] = {"agent": "x", "radius": 1}
    with pytest.raises(ConfigError) as err:
        from_toml_dict(doc, "config.toml")
    message = str(err.value)
    assert "Did you mean 'lr'" in message
    assert "episodes" in message
    assert "It belongs in [preprocessing]" in message
    assert len(err.value.problems) == 3


def test_malformed_config_toml_names_the_line(tmp_path: Path):
    (tmp_path / "config.toml").write_text('[game]\nfactory = "x:y"\nactions = [\n')
    with pytest.raises(ConfigError) as err:
        read_config(tmp_path)
    assert "config.toml" in str(err.value) and "line" in str(err.value)


def test_missing_run_dir_and_config_are_clear(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_config(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no config.toml"):
        read_config(tmp_path)


def test_structured_defaults_are_visible_in_the_composed_config():
    cfg = composed(["+game=snake"])
    trainer = OmegaConf.to_container(cfg.trainer)
    for key in ("episodes", "seed", "checkpoint_every", "keep_checkpoints", "lr", "device", "time_limit"):
        assert key in trainer
