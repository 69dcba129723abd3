"""Choices a game description leaves open, made once from the game itself when a run is created.

A description names the game, its keys and its reward; it may leave open what the agent sees, which
network reads it, how long to explore and where learning and the games run. :func:`choose` fills those in
by the rules in ``conf/autoconfig.yaml``, and the run's ``config.toml`` keeps each choice (with its reason,
in ``[chosen]``) for every later start. No rule reads a clock: the same command on the same machine writes
the same ``config.toml``, busy or idle.

* **Who is playing**: the agents whose class defines ``handle_keystroke`` (:func:`keyboard_agents`),
  the ones the trainer's key presses move.
* **What it sees**: whenever one agent on the board reads the keyboard, an egocentric window centred on it,
  whatever the board's size: what the network learns in one place ("the star is to my left") then holds in
  every other, and its input stays small (walls beyond the edge show).
* **Which network**: an MLP over a small input; a small strided CNN over a large one, and over a small one of
  a spatial game with many agents (its turns are slow enough to hide the convolution's learning).
* **How long to explore**: with a budget (``trainer.total_env_steps`` or ``trainer.time_limit``), epsilon
  reaches its end by half of it (``trainer.exploration_fraction``; a time limit's steps are measured in the run).
* **Where it runs**: :func:`retro_gamer.runtime.placement.choose_placement`.

Every choice yields to an explicit setting: a description's ``crop``/``board``/``observation_function``,
``game.crop=...``, ``model=...``, ``trainer.epsilon_decay_steps=...``, ``trainer.exploration_fraction=...``,
``trainer.learner_process=...``, ``trainer.game_process=...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from retro_gamer.config.schema import ModelConfig, TrainerConfig, config_dir
from retro_gamer.games import Crop, GameDescription, check_against_game, game_factory
from retro_gamer.runtime.placement import choose_placement

DEFAULT_MODEL = "mlp"  # the model option conf/config.yaml's defaults list names


def rules() -> dict[str, Any]:
    """The thresholds of ``conf/autoconfig.yaml``."""
    return yaml.safe_load((config_dir() / "autoconfig.yaml").read_text(encoding="utf-8"))


def keyboard_agents(game: Any) -> list[Any]:
    """The agents a key press reaches: those with a ``handle_keystroke`` method, in game order
    (``retro.game.Game.step`` hands every key to exactly these)."""
    return [agent for agent in game.agents if callable(getattr(agent, "handle_keystroke", None))]


def crop_target(game: Any) -> tuple[Any | None, str]:
    """The agent an egocentric window can follow, or None and why not."""
    found = keyboard_agents(game)
    visible = [a for a in found if getattr(a, "display", True) and getattr(a, "position", None) is not None]
    if not visible:
        return None, "no visible agent reads the keyboard (none defines handle_keystroke)"
    if len(visible) > 1:
        names = ", ".join(repr(getattr(a, "name", type(a).__name__)) for a in visible)
        return None, f"{len(visible)} agents read the keyboard ({names}); set game.crop to follow one"
    agent = visible[0]
    name = getattr(agent, "name", None)
    if not name or game.agents_by_name.get(name) is not agent:
        return None, f"the keyboard agent ({type(agent).__name__}) has no name to follow; give it a name attribute"
    return agent, f"'{name}' reads the keyboard"


@dataclass
class Choices:
    """What :func:`choose` decided; ``None`` leaves a setting as it is. ``reasons``: one per kind of choice
    (``view``, ``network``, ``exploration``, ``placement``), as ``config.toml``'s ``[chosen]`` keeps them."""

    crop: Crop | None = None
    model: str | None = None  # a conf/model option: mlp, cnn_small
    exploration_fraction: float | None = None
    learner_process: bool | None = None
    game_process: bool | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons.values())


def _one_hot_inputs(desc: GameDescription, crop: Crop | None) -> int:
    if not desc.board or desc.observation_function:
        return 0
    (width, height), _ = desc.resolved()
    cells = (2 * crop.radius + 1) ** 2 if crop else width * height
    return cells * (len(desc.character_set or []) + (1 if crop else 0))


def choose_observation(
    desc: GameDescription, game: Any, explicit_crop: bool, rule: dict[str, Any]
) -> tuple[Crop | None, str]:
    """An egocentric window around the one keyboard agent, on any board; the reason either way."""
    width, height = game.board_size
    if explicit_crop:
        if desc.crop is None:
            return None, "the whole board (game.crop is set to none)"
        target, _ = crop_target(game)
        note = ""
        if target is not None and getattr(target, "name", None) != desc.crop.agent:
            note = f" (note: '{target.name}' is the agent that reads the keyboard)"
        side = 2 * desc.crop.radius + 1
        return None, f"a {side}x{side} window around '{desc.crop.agent}' as the description says{note}"
    if not desc.board or desc.observation_function:
        return None, "no board (the description observes state values only)"
    target, reason = crop_target(game)
    if target is None:
        return None, f"the whole {width}x{height} board: {reason}"
    radius = rule["crop_radius"]
    side = 2 * radius + 1
    return (
        Crop(agent=target.name, radius=radius),
        f"a {side}x{side} window around '{target.name}' because {reason}: seen from where it stands, what it "
        f"learns in one place holds in every other (game.crop=null for the whole {width}x{height} board)",
    )


def choose_network(inputs: int, spatial: bool, agents: int, rule: dict[str, Any]) -> tuple[str, str]:
    """mlp for a small one-hot input; cnn_small for a large one, and for a small one of a spatial game with at
    least ``busy_game_agents`` agents, whose turns hide the convolution's learning."""
    small, large = rule["small_network"], rule["large_network"]
    if inputs > rule["mlp_max_inputs"]:
        return large, f"model={large}: {inputs:,} one-hot inputs is too many for an MLP"
    cheap = f"model={small}: {inputs:,} one-hot inputs is cheap for an MLP"
    if not spatial:
        return small, cheap
    busy = rule["busy_game_agents"]
    if agents >= busy:
        return large, (
            f"model={large}: spatial = true, and the game's {agents} agents (at least {busy}) make its turns "
            "slow enough to hide a convolution's learning"
        )
    return (
        small,
        f"{cheap} (spatial = true, but with {agents} agents, fewer than {busy}, a convolution would slow training)",
    )


def choose_exploration(trainer: TrainerConfig, rule: dict[str, Any]) -> tuple[float | None, str | None]:
    """With a budget, epsilon reaches its end by ``exploration_fraction`` of it; None without one."""
    fraction = rule["exploration_fraction"]
    end = f"epsilon reaches {trainer.epsilon_end:g} by {fraction:.0%} of"
    sooner = f", or after trainer.epsilon_decay_steps = {trainer.epsilon_decay_steps:,} if sooner"
    if trainer.total_env_steps is not None:
        return fraction, f"{end} the {trainer.total_env_steps:,} env steps of trainer.total_env_steps{sooner}"
    if trainer.time_limit is not None:
        return fraction, (
            f"{end} the env steps trainer.time_limit = {trainer.time_limit:g} min gives (measured in the "
            f"run once learning starts, and recorded in metrics.json){sooner}"
        )
    return None, None


def choose(
    desc: GameDescription,
    model: ModelConfig,
    trainer: TrainerConfig,
    *,
    explicit_crop: bool,
    explicit_model: bool,
    explicit_decay: bool,
    base_dir: Path | None = None,
    source: str = "game description",
) -> Choices:
    """Decide what ``desc`` leaves open (see the module docstring). ``desc`` may be unresolved: the game is
    created and checked (``source`` names the description in errors) once here to look at it, and characters
    are discovered if the description has none."""
    from retro_gamer.env.environment import discover_characters

    rule = rules()
    factory = game_factory(desc, base_dir)
    game = factory()
    check_against_game(desc, game, source)
    if desc.character_set is None:
        desc = replace(
            desc, character_set=discover_characters(factory, desc.actions, trainer.exploration_turns, trainer.seed)
        )
    desc = replace(desc, board_size=tuple(game.board_size))
    agents = len(game.agents)
    choices = Choices()
    crop, reason = choose_observation(desc, game, explicit_crop, rule)
    choices.crop = crop
    choices.reasons["view"] = "sees " + reason
    seen = replace(desc, crop=crop) if crop is not None else desc
    if explicit_model:
        choices.reasons["network"] = f"model={model.kind.value} (your override)"
        kind = model.kind.value
    else:
        choices.model, choices.reasons["network"] = choose_network(
            _one_hot_inputs(seen, seen.crop), desc.spatial, agents, rule
        )
        kind = model_config(choices.model).kind.value
    if not explicit_decay:
        choices.exploration_fraction, exploration_reason = choose_exploration(trainer, rule)
        if exploration_reason:
            choices.reasons["exploration"] = exploration_reason
    choices.learner_process, choices.game_process, choices.reasons["placement"] = choose_placement(
        trainer, kind, agents, rule["busy_game_agents"]
    )
    return choices


def model_config(option: str) -> ModelConfig:
    """A ``conf/model/OPTION.yaml`` as a :class:`ModelConfig`."""
    from omegaconf import OmegaConf

    data = yaml.safe_load((config_dir() / "model" / f"{option}.yaml").read_text(encoding="utf-8"))
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), data))
    assert isinstance(config, ModelConfig)  # OmegaConf builds the structured config's own class
    return config
