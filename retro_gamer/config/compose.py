"""Build a :class:`RunConfig` from a game argument and Hydra-style overrides.

The game argument may be a Hydra game name (``snake``) or anything a factory string accepts
(``my_game.py``, ``games/my_game``, ``retro.examples.nav``, ``my_game:create_enemy``), in which
case the description comes from that project's ``[tool.retro-gamer]`` table.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, cast

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from retro_gamer.config.schema import (
    AppConfig,
    ModelConfig,
    RunConfig,
    TrackingConfig,
    TrainerConfig,
    available_games,
    config_dir,
    register_configs,
)
from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.games import DISCOVERED_KEYS, description_from_pyproject, parse_description

_SCHEMAS = {"trainer": TrainerConfig, "model": ModelConfig, "tracking": TrackingConfig}


def typo_hints(overrides: list[str]) -> list[str]:
    """For ``trainer.lrr=1``-style typos: the nearest real key, and for ``model=mpl``-style ones the nearest
    option of the config group; Hydra's own messages list what exists but do not say which one was meant."""
    hints = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        section, _, name = key.partition(".")
        known = [f.name for f in fields(_SCHEMAS[section])] if section in _SCHEMAS else []
        if name and known and name.split(".")[0] not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            guess = f" Did you mean '{section}.{close[0]}'?" if close else ""
            hints.append(f"'{key}' is not a setting.{guess} {section} keys: {', '.join(known)}.")
        elif not name and "=" in item:
            hints += _group_option_hints(key, *item.split("=", 1))
    return hints


def _group_option_hints(group: str, written: str, value: str) -> list[str]:
    """``model=mpl``: each value (a multirun sweep lists several) that names no file ``conf/GROUP/VALUE.yaml``."""
    folder = config_dir() / group
    if not folder.is_dir() or not value:
        return []
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    plus = "+" if group == "game" else ""  # conf/config.yaml chooses no game, so choosing one appends to the defaults
    hints = []
    for choice in value.split(","):
        if choice not in options:
            close = difflib.get_close_matches(choice, options, n=1, cutoff=0.5)
            guess = f" Did you mean '{plus}{group}={close[0]}'?" if close else ""
            hints.append(
                f"'{written}={choice}': there is no {group} option '{choice}'.{guess} "
                f"{group} options: {', '.join(options)}."
            )
    return hints


# No setting takes a number this long, and Python refuses to turn more than sys.get_int_max_str_digits()
# digits into an int, which Hydra's parser does without asking.
_MAX_DIGITS = 100
_NUMBER = re.compile(r"[+-]?[\d_]*\.?[\d_]*(e[+-]?\d+)?", re.IGNORECASE)


def number_problems(overrides: list[str]) -> list[str]:
    """Overrides holding an absurdly long number (``trainer.lr=1000…0``): each one's key and what it allows.

    Checked before Hydra parses the command line, which would otherwise end in a traceback."""
    problems = []
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        for part in re.split(r"[\[\](),\s]+", value):
            digits = sum(c.isdigit() for c in part)
            if digits > _MAX_DIGITS and _NUMBER.fullmatch(part):
                shown = f"{part[:6]}…{part[-3:]}"
                problems.append(f"{key}={shown} is a number of {digits:,} digits; {key} must be {_allowed(key)}.")
    return problems


def _allowed(key: str) -> str:
    """What a setting's metadata allows, in words; a key without a stated range gets the digit limit."""
    section, _, name = key.partition(".")
    for f in fields(_SCHEMAS[section]) if section in _SCHEMAS else ():
        if f.name == name and "allowed" in f.metadata:
            return f.metadata["allowed"][0]
    return f"a number of at most {_MAX_DIGITS} digits"


def _one_value_each(message: str, overrides: list[str]) -> str:
    """Hydra's answer to ``trainer.time_limit=1,5`` advises ``--multirun``, which a single composition (``retro-gamer
    create``) does not have: say that a comma makes a list, and suggest the decimal point it probably meant."""
    for item in overrides:
        key, _, value = item.partition("=")
        if f"'{item}'" in message:
            decimal = re.fullmatch(r"([+-]?\d+),(\d+)", value)
            point = (
                f" For the number, write {key}={decimal[1]}.{decimal[2]} (a decimal point, not a comma)."
                if decimal
                else ""
            )
            return (
                f"{item}: this command takes one value per key, and {value} is a list of values (a comma separates "
                f"values; sweeping over several needs `python -m retro_gamer.train --multirun`).{point} "
                f"For a list, write {key}=[{value}]; for text, quote it: {key}='{value}'."
            )
    return message


def compose_app(overrides: list[str]) -> DictConfig:
    """Compose ``conf/`` with Hydra's compose API; a bad override is a one-paragraph error."""
    problems = number_problems(overrides)
    if problems:
        raise ConfigError("command line", problems)
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        hints = typo_hints(overrides)
        message = str(err).split("\n")[0] if hints else str(err)
        if "Ambiguous value for argument" in message:
            message = _one_value_each(message, overrides)
        if err.__cause__ is not None:  # Hydra wraps the reason ("could not be converted to Integer")
            message += f": {str(err.__cause__).splitlines()[0]}"
        raise RetroGamerError("\n".join([f"Bad override: {message}".rstrip(), *hints])) from None


def description_source(base: str, overrides: list[str]) -> str:
    """Where a game description came from: ``base`` and the command line's ``game.*`` overrides, since a problem
    found in the description later (a reward that is not a key of ``game.state``) may be the override's."""
    given = [o.lstrip("+~") for o in overrides if _key(o).startswith("game.")]
    return base + (f" with the command-line override{'s' * (len(given) > 1)} {' '.join(given)}" if given else "")


def run_config_from_hydra(
    cfg: DictConfig,
    game_choice: str | None,
    overrides: list[str] | None = None,
    why: list[str] | None = None,
    previous: RunConfig | None = None,
) -> RunConfig:
    """Turn a composed :class:`AppConfig` into a :class:`RunConfig`, validating the game node and filling in
    what the game leaves open (:mod:`retro_gamer.config.autoconfig`). ``overrides`` (default: Hydra's own, inside a
    Hydra app) tell which choices the user made; ``why``, when given, receives the reasons; ``previous``, the
    config.toml of a run directory that exists, whose automatic choices are kept (:func:`keep_choices`)."""
    if cfg.game is None:
        games = ", ".join(available_games())
        raise ConfigError(
            "command line",
            [f"no game chosen. Add +game=NAME, one of: {games}. Example: python -m retro_gamer.train +game=snake"],
        )
    if overrides is None:
        overrides = _hydra_overrides()
    source = description_source(f"conf/game/{game_choice}.yaml" if game_choice else "game config", overrides)
    game = parse_description(cast(dict[str, Any], OmegaConf.to_container(cfg.game, resolve=True)), source)
    app = cast(AppConfig, OmegaConf.to_object(cfg))
    explicit = _explicit(overrides)
    run = RunConfig(game=game, model=app.model, trainer=app.trainer, tracking=app.tracking)
    run, reasons = apply_choices(
        run,
        explicit_crop="crop" in cfg.game or "game.crop" in explicit,
        explicit_model="model" in explicit,
        explicit_decay="trainer.epsilon_decay_steps" in explicit,
        source=source,
        previous=previous,
    )
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


def apply_choices(
    cfg: RunConfig,
    *,
    explicit_crop: bool,
    explicit_model: bool,
    explicit_decay: bool,
    base_dir: Path | None = None,
    source: str = "game description",
    previous: RunConfig | None = None,
) -> tuple[RunConfig, str]:
    """What :func:`retro_gamer.config.autoconfig.choose` decides, applied to ``cfg``; for a run that exists already
    (``previous``: its config.toml), what was chosen when it was created (:func:`keep_choices`). A model or
    schedule that differs from the defaults counts as chosen too (a caller composing without Hydra's override
    list), and the user's own ``model.*`` values (what differs from the default option) carry over onto a
    chosen network."""
    from retro_gamer.config.autoconfig import DEFAULT_MODEL, choose, model_config

    default_model = model_config(DEFAULT_MODEL)
    explicit_model = explicit_model or cfg.model.kind != default_model.kind
    explicit_decay = (
        explicit_decay
        or cfg.trainer.epsilon_decay_steps != TrainerConfig().epsilon_decay_steps
        or cfg.trainer.exploration_fraction is not None
    )
    own_model = {
        f.name: getattr(cfg.model, f.name)
        for f in fields(cfg.model)
        if getattr(cfg.model, f.name) != getattr(default_model, f.name)
    }
    if previous is not None:
        return keep_choices(
            cfg,
            previous,
            explicit_crop=explicit_crop,
            explicit_model=explicit_model,
            explicit_decay=explicit_decay,
            own_model=own_model,
        )
    choices = choose(
        cfg.game,
        cfg.model,
        cfg.trainer,
        explicit_crop=explicit_crop,
        explicit_model=explicit_model,
        explicit_decay=explicit_decay,
        base_dir=base_dir,
        source=source,
    )
    game, model, trainer = cfg.game, cfg.model, cfg.trainer
    if choices.crop is not None:
        game = replace(game, crop=choices.crop)
    if choices.model is not None and choices.model != DEFAULT_MODEL:
        model = replace(model_config(choices.model), **own_model)
    if choices.exploration_fraction is not None:
        trainer = replace(trainer, exploration_fraction=choices.exploration_fraction)
    trainer = replace(trainer, learner_process=choices.learner_process, game_process=choices.game_process)
    return replace(cfg, game=game, model=model, trainer=trainer, chosen=choices.reasons), choices.why


def keep_choices(
    cfg: RunConfig,
    previous: RunConfig,
    *,
    explicit_crop: bool,
    explicit_model: bool,
    explicit_decay: bool,
    own_model: dict[str, Any],
) -> tuple[RunConfig, str]:
    """``cfg`` with the automatic choices of the run it continues (``previous``), where the user did not set them
    now: choosing again could differ (a rule changed, or the machine did) and would make the run refuse to resume
    or run differently from one never stopped."""
    game, model, trainer, p = cfg.game, cfg.model, cfg.trainer, previous.trainer
    if not explicit_crop:
        game = replace(game, crop=previous.game.crop)
    if not explicit_model:
        model = replace(previous.model, **own_model)
    if not explicit_decay:
        trainer = replace(trainer, exploration_fraction=p.exploration_fraction)
    if trainer.learner_process is None:
        trainer = replace(trainer, learner_process=p.learner_process)
    if trainer.game_process is None:
        trainer = replace(trainer, game_process=p.game_process)
    why = "kept from the run's config.toml" + (f": {'; '.join(previous.chosen.values())}" if previous.chosen else "")
    return replace(cfg, game=game, model=model, trainer=trainer, chosen=previous.chosen), why


def compose_run(game: str, overrides: list[str], base_dir: Path | None = None) -> tuple[RunConfig, str, str]:
    """Returns the run config, where its game description came from, and why this observation and network.

    The source names the command line's ``game.*`` overrides too: a problem found in the description later
    (a reward that is not a key of ``game.state``) may be the override's, not the file's."""
    explicit = _explicit(overrides)
    if game in available_games():
        reasons: list[str] = []
        cfg = run_config_from_hydra(compose_app([f"+game={game}", *overrides]), game, overrides, reasons)
        return cfg, description_source(f"conf/game/{game}.yaml", overrides), reasons[0]
    game_overrides = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("game."):
            game_overrides[key[len("game.") :]] = yaml.safe_load(value)
    desc = description_from_pyproject(game, base_dir)
    explicit_crop = desc.crop is not None or "crop" in game_overrides
    if game_overrides:
        data = {k: v for k, v in asdict(desc).items() if v is not None and k not in DISCOVERED_KEYS}
        desc = parse_description(
            {**data, **game_overrides}, description_source(f"[tool.retro-gamer] of {game}", overrides)
        )
    rest = [o for o in overrides if not o.split("=", 1)[0].startswith("game.")]
    app = cast(AppConfig, OmegaConf.to_object(compose_app(rest)))
    cfg = RunConfig(game=desc, model=app.model, trainer=app.trainer, tracking=app.tracking)
    source = description_source(f"[tool.retro-gamer] of {game}", overrides)
    cfg, why = apply_choices(
        cfg,
        explicit_crop=explicit_crop,
        explicit_model="model" in explicit,
        explicit_decay="trainer.epsilon_decay_steps" in explicit,
        base_dir=base_dir,
        source=source,
    )
    return cfg, source, why
