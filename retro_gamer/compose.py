"""Build a :class:`RunConfig` from a game argument and Hydra-style overrides.

The game argument may be a Hydra game name (``snake``) or anything a factory string accepts
(``my_game.py``, ``games/my_game``, ``retro.examples.nav``, ``my_game:create_enemy``), in which
case the description comes from that project's ``[tool.retro-gamer]`` table.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, fields, replace
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


def run_config_from_hydra(cfg: DictConfig, game_choice: str | None, overrides: list[str] | None = None,
                          why: list[str] | None = None) -> RunConfig:
    """Turn a composed :class:`AppConfig` into a :class:`RunConfig`, validating the game node and filling in
    what the game leaves open (:mod:`retro_gamer.autoconfig`). ``overrides`` (default: Hydra's own, inside a
    Hydra app) tell which choices the user made; ``why``, when given, receives the reasons."""
    if cfg.game is None:
        games = ", ".join(available_games())
        raise ConfigError("command line", [f"no game chosen. Add +game=NAME, one of: {games}. Example: python -m retro_gamer.train +game=snake"])
    source = f"conf/game/{game_choice}.yaml" if game_choice else "game config"
    game = parse_description(OmegaConf.to_container(cfg.game, resolve=True), source)
    app: AppConfig = OmegaConf.to_object(cfg)
    if overrides is None:
        overrides = _hydra_overrides()
    explicit = _explicit(overrides)
    run = RunConfig(game=game, model=app.model, trainer=app.trainer, tracking=app.tracking)
    run, reasons = apply_choices(run, explicit_crop="crop" in cfg.game or "game.crop" in explicit,
                                 explicit_model="model" in explicit, explicit_decay="trainer.epsilon_decay_steps" in explicit,
                                 source=source)
    if why is not None:
        why.append(reasons)
    return run


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _explicit(overrides: list[str]) -> set[str]:
    return {_key(o) for o in overrides}


def _hydra_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def apply_choices(cfg: RunConfig, *, explicit_crop: bool, explicit_model: bool, explicit_decay: bool,
                  base_dir: Path | None = None, source: str = "game description") -> tuple[RunConfig, str]:
    """What :func:`retro_gamer.autoconfig.choose` decides, applied to ``cfg``. A model or schedule that differs from
    the defaults counts as chosen too (a caller composing without Hydra's override list), and the user's own
    ``model.*`` values (what differs from the default option) carry over onto a chosen network."""
    from retro_gamer.autoconfig import DEFAULT_MODEL, choose, model_config

    default_model = model_config(DEFAULT_MODEL)
    explicit_model = explicit_model or cfg.model.kind != default_model.kind
    explicit_decay = explicit_decay or cfg.trainer.epsilon_decay_steps != TrainerConfig().epsilon_decay_steps
    choices = choose(cfg.game, cfg.model, cfg.trainer, explicit_crop=explicit_crop, explicit_model=explicit_model,
                     explicit_decay=explicit_decay, base_dir=base_dir, source=source)
    game, model, trainer = cfg.game, cfg.model, cfg.trainer
    if choices.crop is not None:
        game = replace(game, crop=choices.crop)
    if choices.model is not None and choices.model != DEFAULT_MODEL:
        own = {f.name: getattr(model, f.name) for f in fields(model) if getattr(model, f.name) != getattr(default_model, f.name)}
        model = replace(model_config(choices.model), **own)
    if choices.epsilon_decay_steps is not None:
        trainer = replace(trainer, epsilon_decay_steps=choices.epsilon_decay_steps)
    return replace(cfg, game=game, model=model, trainer=trainer), choices.why


def compose_run(game: str, overrides: list[str], base_dir: Path | None = None) -> tuple[RunConfig, str, str]:
    """Returns the run config, where its game description came from, and why this observation and network."""
    explicit = _explicit(overrides)
    if game in available_games():
        why: list[str] = []
        cfg = run_config_from_hydra(compose_app([f"+game={game}", *overrides]), game, overrides, why)
        return cfg, f"conf/game/{game}.yaml", why[0]
    game_overrides = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("game."):
            game_overrides[key[len("game."):]] = yaml.safe_load(value)
    desc = description_from_pyproject(game, base_dir)
    explicit_crop = desc.crop is not None or "crop" in game_overrides
    if game_overrides:
        data = {k: v for k, v in asdict(desc).items() if v is not None and k != "board_size"}
        desc = parse_description({**data, **game_overrides}, f"{game} with overrides")
    rest = [o for o in overrides if not o.split("=", 1)[0].startswith("game.")]
    app: AppConfig = OmegaConf.to_object(compose_app(rest))
    cfg = RunConfig(game=desc, model=app.model, trainer=app.trainer, tracking=app.tracking)
    cfg, why = apply_choices(cfg, explicit_crop=explicit_crop, explicit_model="model" in explicit,
                             explicit_decay="trainer.epsilon_decay_steps" in explicit, base_dir=base_dir,
                             source="[tool.retro-gamer] of " + game)
    return cfg, "[tool.retro-gamer] of " + game, why
