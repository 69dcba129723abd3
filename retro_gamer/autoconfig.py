"""Choices a game description leaves open, made from the game itself, each with its reason.

A description names the game, its keys and its reward; it may leave open what the agent sees, which
network reads it and how long to explore. :func:`choose` fills those in by the rules in
``conf/autoconfig.yaml``:

* **Who is playing**: the agents whose class defines ``handle_keystroke`` (:func:`keyboard_agents`),
  the ones the trainer's key presses move.
* **What it sees**: on a large board, an egocentric window centred on the one keyboard agent, so the
  network's input stays small and the same wherever the agent is (walls beyond the edge show).
* **Which network**: an MLP over a small input, a small strided CNN over a large one, and over a small one of
  a spatial game whose own turns are slow enough to hide the convolution's learning (timed on the game).
* **How long to explore**: with ``trainer.time_limit``, epsilon decays within part of the env steps
  the budget is expected to give (game speed and one learning step are timed, about half a second).

Every choice yields to an explicit setting: a description's ``crop``/``board``/``observation_function``,
``game.crop=...``, ``model=...``, ``trainer.epsilon_decay_steps=...``.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from retro_gamer.config import ModelConfig, TrainerConfig, config_dir
from retro_gamer.games import Crop, GameDescription, check_against_game, game_factory


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
    """What :func:`choose` decided; ``None`` leaves a setting as it is."""

    crop: Crop | None = None
    model: str | None = None  # a conf/model option: mlp, cnn_small
    epsilon_decay_steps: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def _one_hot_inputs(desc: GameDescription, crop: Crop | None) -> int:
    if not desc.board or desc.observation_function:
        return 0
    width, height = desc.board_size
    cells = (2 * crop.radius + 1) ** 2 if crop else width * height
    return cells * (len(desc.character_set or []) + (1 if crop else 0))


def choose_observation(desc: GameDescription, game: Any, explicit_crop: bool, rule: dict[str, Any]) -> tuple[Crop | None, str]:
    """An egocentric window on a large board with one keyboard agent; the reason either way."""
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
    if width * height <= rule["crop_above_cells"]:
        return None, f"the whole {width}x{height} board (small enough to see at once)"
    target, reason = crop_target(game)
    if target is None:
        return None, f"the whole {width}x{height} board: {reason}"
    radius = rule["crop_radius"]
    side = 2 * radius + 1
    return (Crop(agent=target.name, radius=radius),
            f"a {side}x{side} window around '{target.name}' because the {width}x{height} board is large and {reason} "
            f"(game.crop=null for the whole board)")


def choose_network(inputs: int, spatial: bool, rule: dict[str, Any],
                   costs: Callable[[str, int], StepCosts]) -> tuple[str, str]:
    """mlp for a small one-hot input, cnn_small for a large one, and for a small one of a spatial game whose turns
    hide the convolution's learning (``spatial_cnn_max_learning_share``; ``costs(option, threads)`` times a
    conf/model option on this game)."""
    small, large = rule["small_network"], rule["large_network"]
    if inputs > rule["mlp_max_inputs"]:
        return large, f"model={large}: {inputs:,} one-hot inputs is too many for an MLP"
    cheap = f"model={small}: {inputs:,} one-hot inputs is cheap for an MLP"
    if not spatial:
        return small, cheap
    cost = costs(large, 1)  # on one thread, as the learner process learns
    timing = (f"its learning, {cost.learning * 1e3:.2f} ms per env step, against the game's own "
              f"{cost.game * 1e3:.2f} ms a turn")
    if cost.learning <= rule["spatial_cnn_max_learning_share"] * cost.game:
        return large, f"model={large}: spatial = true, and the game's turns are slow enough to hide a convolution ({timing})"
    return small, f"{cheap} (spatial = true, but a convolution would slow training: {timing})"


def exploration_steps(time_limit_min: float, steps_per_s: float, configured: int, fraction: float) -> int:
    """Epsilon decay steps for a time budget: ``configured`` while the budget's ``fraction`` of expected steps
    covers at least three quarters of it (a tuned schedule stays as it is), else that share of the budget
    rounded down to one significant figure (49,310 -> 40,000), so a measurement's jitter rarely shows."""
    budget = fraction * steps_per_s * 60.0 * time_limit_min
    if budget >= 0.75 * configured:
        return configured
    scale = 10 ** max(0, len(str(int(budget))) - 1)
    return int(max(1_000, budget // scale * scale))


@dataclass(frozen=True)
class StepCosts:
    """Seconds per env step of each part of training, measured on this machine."""

    game: float  # one turn of one game, its observation included
    learning: float  # one gradient step, spread over the ``train_every`` env steps it stands for
    acting: float  # one forward pass for all games, spread over them

    @property
    def steps_per_s(self) -> float:
        """Training throughput with everything in one process."""
        return 1.0 / (self.game + self.learning + self.acting)

    @property
    def game_share(self) -> float:
        """The part of a training step the games take, when it is all in one process."""
        return self.game * self.steps_per_s


def measure_step_costs(desc: GameDescription, model: ModelConfig, trainer: TrainerConfig, base_dir: Path | None,
                       seconds: float = 0.3) -> StepCosts:
    """Time the game stepped with its observation for ``seconds`` (:func:`time_game_turn`), then an act and a
    learning step of ``model`` on it (:func:`time_network`)."""
    game_s, dims = time_game_turn(desc, trainer, base_dir, seconds)
    return time_network(model, dims, trainer, game_s)


def time_game_turn(desc: GameDescription, trainer: TrainerConfig, base_dir: Path | None,
                   seconds: float = 0.3) -> tuple[float, dict[str, Any]]:
    """Seconds per turn of one game with random keys, its observation included, over ``seconds``; and the
    observation's sizes (``GameEnvironment.dims``). Python's random state is left as it was."""
    from retro_gamer.env import GameEnvironment

    state = random.getstate()
    try:
        random.seed(trainer.seed)
        env = GameEnvironment(desc, game_factory(desc, base_dir), base_dir)
        env.reset()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            _, _, terminated, truncated = env.step(random.randrange(env.n_actions))
            steps += 1
            if terminated or truncated:
                env.reset()
        return (time.perf_counter() - start) / max(steps, 1), env.dims
    finally:
        random.setstate(state)


def time_network(model: ModelConfig, dims: dict[str, Any], trainer: TrainerConfig, game_s: float,
                 threads: int | None = None) -> StepCosts:
    """The costs of training ``model`` on a game of turns of ``game_s`` seconds and observations of ``dims``: an act
    and a learning step (medians of a few) on ``threads`` torch threads (default: as many as now; the learner
    process learns on one). torch's random state and the thread count are left as they were, so measuring never
    changes what a run then draws."""
    import torch

    from retro_gamer.network import QNetwork

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads or before)
        with torch.random.fork_rng(devices=[]):
            q = QNetwork.from_dims(model, dims)
            optimizer = torch.optim.Adam(q.parameters())
            batch = max(trainer.batch_size, 1)
            board = torch.zeros((batch, *dims["board_shape"]), dtype=torch.uint8)
            extras = torch.zeros((batch, dims["extras_size"]))
            act_board, act_extras = board[: max(trainer.num_envs, 1)], extras[: max(trainer.num_envs, 1)]

            def learn_once() -> None:  # the trainer's learn(): two target passes, one online pass with backward
                with torch.no_grad():
                    q(board, extras)
                    q(board, extras)
                loss = q(board, extras).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            learn_s = _median_seconds(learn_once, 7)
            with torch.inference_mode():
                act_s = _median_seconds(lambda: q(act_board, act_extras), 7)
    finally:
        torch.set_num_threads(before)
    return StepCosts(game=game_s, learning=learn_s / max(trainer.train_every, 1), acting=act_s / max(trainer.num_envs, 1))


def _median_seconds(work: Callable[[], Any], repeats: int) -> float:
    """The median of ``repeats`` timings after two untimed calls: one slow call (another process) is ignored."""
    work(), work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def choose(desc: GameDescription, model: ModelConfig, trainer: TrainerConfig, *, explicit_crop: bool,
           explicit_model: bool, explicit_decay: bool, base_dir: Path | None = None, source: str = "game description") -> Choices:
    """Decide what ``desc`` leaves open (see the module docstring). ``desc`` may be unresolved: the game is
    created and checked (``source`` names the description in errors) once here to look at it, and characters
    are discovered if the description has none."""
    from retro_gamer.env import discover_characters

    rule = rules()
    factory = game_factory(desc, base_dir)
    game = factory()
    check_against_game(desc, game, source)
    if desc.character_set is None:
        desc = replace(desc, character_set=discover_characters(factory, desc.actions, trainer.exploration_turns, trainer.seed))
    desc = replace(desc, board_size=tuple(game.board_size))
    choices = Choices()
    crop, reason = choose_observation(desc, game, explicit_crop, rule)
    choices.crop = crop
    choices.reasons.append("sees " + reason)
    seen = replace(desc, crop=crop) if crop is not None else desc
    game_turn = functools.cache(lambda: time_game_turn(seen, trainer, base_dir))  # once (0.3 s) for every network
    measured: dict[tuple[str, int | None], StepCosts] = {}

    def costs(network: ModelConfig, threads: int | None = None) -> StepCosts:
        key = (repr(network), threads)
        if key not in measured:
            game_s, dims = game_turn()
            measured[key] = time_network(network, dims, trainer, game_s, threads)
        return measured[key]

    if explicit_model:
        choices.reasons.append(f"model={model.kind.value} (your override)")
    else:
        choices.model, reason = choose_network(_one_hot_inputs(seen, seen.crop), desc.spatial, rule,
                                               lambda option, threads: costs(model_config(option), threads))
        choices.reasons.append(reason)
    if trainer.time_limit and not explicit_decay:
        rate = costs(model_config(choices.model) if choices.model else model).steps_per_s
        steps = exploration_steps(trainer.time_limit, rate, trainer.epsilon_decay_steps, rule["exploration_fraction"])
        if steps < trainer.epsilon_decay_steps:
            choices.epsilon_decay_steps = steps
            choices.reasons.append(
                f"epsilon decays over {steps:,} steps, not {trainer.epsilon_decay_steps:,}: about {rate:,.0f} env steps/s "
                f"expected, so {trainer.time_limit:g} min give ~{rate * 60 * trainer.time_limit:,.0f} steps")
    return choices


def model_config(option: str) -> ModelConfig:
    """A ``conf/model/OPTION.yaml`` as a :class:`ModelConfig`."""
    from omegaconf import OmegaConf

    data = yaml.safe_load((config_dir() / "model" / f"{option}.yaml").read_text(encoding="utf-8"))
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), data))
