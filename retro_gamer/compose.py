"""Build a :class:`RunConfig` from a game argument and Hydra-style overrides.

The game argument may be a Hydra game name (``snake``) or anything a factory string accepts
(``my_game.py``, ``games/my_game``, ``retro.examples.nav``, ``my_game:create_enemy``), in which
case the description comes from that project's ``[tool.retro-gamer]`` table.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, fields
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from retro_gamer.config import (
    AppConfig, ModelConfig, RunConfig, TrackingConfig, TrainerConfig, available_games, config_dir, register_configs,
)
from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.games import description_from_pyproject, parse_description


_SCHEMAS = {"trainer": TrainerConfig, "model": ModelConfig, "tracking": TrackingConfig}


def typo_hints(overrides: list[str]) -> list[str]:
    """For ``trainer.lrr=1``-style typos: the nearest real key, which Hydra's own message lacks."""
    hints = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        section, _, name = key.partition(".")
        known = [f.name for f in fields(_SCHEMAS[section])] if section in _SCHEMAS else []
        if name and known and name.split(".")[0] not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            guess = f" Did you mean '{section}.{close[0]}'?" if close else ""
            hints.append(f"'{key}' is not a setting.{guess} {section} keys: {', '.join(known)}.")
    return hints


def compose_app(overrides: list[str]) -> DictConfig:
    """Compose ``conf/`` with Hydra's compose API; a bad override is a one-paragraph error."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        hints = typo_hints(overrides)
        message = str(err).split("\nTo append")[0] if hints else str(err)
        if err.__cause__ is not None:  # Hydra wraps the reason ("could not be converted to Integer")
            message += f": {str(err.__cause__).splitlines()[0]}"
        raise RetroGamerError("\n".join([f"Bad override: {message}".rstrip(), *hints])) from None


def run_config_from_hydra(cfg: DictConfig, game_choice: str | None) -> RunConfig:
    """Turn a composed :class:`AppConfig` into a :class:`RunConfig`, validating the game node."""
    if cfg.game is None:
        games = ", ".join(available_games())
        raise ConfigError("command line", [f"no game chosen. Add +game=NAME, one of: {games}. Example: python -m retro_gamer.train +game=snake"])
    source = f"conf/game/{game_choice}.yaml" if game_choice else "game config"
    game = parse_description(OmegaConf.to_container(cfg.game, resolve=True), source)
    app: AppConfig = OmegaConf.to_object(cfg)
    return RunConfig(game=game, model=app.model, trainer=app.trainer, tracking=app.tracking)


def compose_run(game: str, overrides: list[str], base_dir: Path | None = None) -> tuple[RunConfig, str, str]:
    """Returns the run config, where its game description came from, and why this network."""
    chose_model = any(o.split("=", 1)[0].lstrip("+~") == "model" for o in overrides)
    if game in available_games():
        cfg = run_config_from_hydra(compose_app([f"+game={game}", *overrides]), game)
        why = "model=" + cfg.model.kind.value + (" (your override)" if chose_model else " (the default; override with model=cnn)")
        return cfg, f"conf/game/{game}.yaml", why
    game_overrides = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("game."):
            game_overrides[key[len("game."):]] = yaml.safe_load(value)
    desc = description_from_pyproject(game, base_dir)
    if game_overrides:
        data = {k: v for k, v in asdict(desc).items() if v is not None and k != "board_size"}
        desc = parse_description({**data, **game_overrides}, f"{game} with overrides")
    rest = [o for o in overrides if not o.split("=", 1)[0].startswith("game.")]
    if not chose_model and desc.spatial:
        rest = ["model=cnn", *rest]
        why = "model=cnn because the description says spatial = true"
    elif chose_model:
        why = "your override"
    else:
        why = "model=mlp (the default; spatial = true in the description would pick cnn)"
    app: AppConfig = OmegaConf.to_object(compose_app(rest))
    cfg = RunConfig(game=desc, model=app.model, trainer=app.trainer, tracking=app.tracking)
    return cfg, "[tool.retro-gamer] of " + game, why
