"""A game of several sides as a PettingZoo ``ParallelEnv``: every side decides from the same position each turn.

Made for chase (:func:`retro_gamer.examples.chase.parallel_env`, as PettingZoo's own environments are made), whose
turn order is what the parallel API models: every side decides from the position the last turn ended in, then the
turn is played. The game supplies what is its own (how to build a game whose sides press given keys, who won); this
module supplies the rest from the pieces the Gymnasium adapter (:mod:`~retro_gamer.adapters.gymnasium_env`) and the
trainer use, so each side sees exactly what a policy trained for that side sees:

* sides: each :class:`Side` is an agent, described as ``retro-gamer create --game GAME OVERRIDES`` describes its
  training game (its keys, its reward key, its observation: a crop around its own piece, its state values);
* actions: ``Discrete`` per agent, action ``i`` pressing ``keys[agent][i]``, the description's keys in order and
  the last one no key, the trainer's order;
* observations: per agent, the trainer's encoder read from the game as
  :meth:`~retro_gamer.policy.TrainedPolicy.get_action` reads it, in the Gymnasium adapter's ``Dict`` space
  (``observation="indices"`` or ``"onehot"``);
* rewards: per agent, the change of its description's reward key over the turn;
* endings: a game decided (an outcome other than the draw) ``terminates`` every agent; a game that ends in a draw
  ``truncates`` them, as does ``max_turns`` running out while the game goes on. The last ``infos``
  hold each side's ``"outcome"``, by the game's own rule;
* randomness: one ``random.Random`` per environment, seeded by ``reset(seed=...)`` and swapped into the global
  ``random`` only around the game's own code, as the Gymnasium adapter does;
* rendering: ``"ansi"`` and ``"rgb_array"``, the Gymnasium adapter's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retro_gamer.extras import require_extra

require_extra("pettingzoo", "A game as a PettingZoo environment (retro_gamer.adapters)")

import numpy as np  # noqa: E402  (after the check above, so a missing extra is one line naming it)
from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402
from retro.input import ProgrammaticInput  # noqa: E402

from retro_gamer.adapters.gymnasium_env import (  # noqa: E402
    RENDER_MODES,
    ObservationKind,
    ObservationSpace,
    check_options,
    describe,
    game_info,
    game_random,
    render,
)
from retro_gamer.env.environment import check_board_size, make_encoder  # noqa: E402
from retro_gamer.errors import RetroGamerError  # noqa: E402

AgentObservation = dict[str, np.ndarray]


@dataclass(frozen=True)
class Side:
    """One agent: its ``name`` (the PettingZoo agent and the side's name in the game's outcome) and the game it is
    trained on, ``game`` and ``overrides`` as ``retro-gamer create --game`` takes them (the keys it presses, the
    reward key it is paid by, what it sees)."""

    name: str
    game: str
    overrides: tuple[str, ...] = ()


class HeldKey:
    """A side's key for the turn being played: the game's piece asks it with ``get_action(game)``, as it would ask a
    trained policy, and gets the key its agent sent (None, no key, before any)."""

    def __init__(self) -> None:
        self.key: str | None = None

    def get_action(self, game: Any) -> str | None:
        return self.key


# A game whose side NAME presses drivers[NAME].get_action(game) when it moves: asked at its move, not before, since
# the agents' keys arrive between turns.
GameMaker = Callable[[Mapping[str, HeldKey]], Any]
Outcome = Callable[[Any], Mapping[str, str]]


class ParallelGameEnv(ParallelEnv[str, AgentObservation, np.int64]):
    """The sides of one game as a PettingZoo ``ParallelEnv`` (see the module docstring for its agents, spaces and
    endings).

    ``create_game``: builds a game whose sides press what their drivers hold. ``outcome``: each side's result of a
    finished game, ``draw`` the result that is neither side's win. ``base_dir``: where the sides' games are found
    from (default: the current folder)."""

    metadata = {"render_modes": RENDER_MODES, "render_fps": 10, "is_parallelizable": True, "name": "retro_gamer"}

    def __init__(
        self,
        create_game: GameMaker,
        sides: Sequence[Side],
        outcome: Outcome,
        *,
        name: str,
        draw: str = "draw",
        observation: ObservationKind = "indices",
        render_mode: str | None = None,
        base_dir: str | Path | None = None,
    ):
        check_options(observation, render_mode)
        self.metadata = {**type(self).metadata, "name": name}
        self.render_mode = render_mode
        self.observation = observation
        self._create_game, self._outcome, self._draw = create_game, outcome, draw
        self._random = random.Random()  # from the OS's entropy until reset(seed=...)
        base = Path(base_dir or Path.cwd()).resolve()
        with game_random(self._random):  # describing plays the game (its factory)
            self.descriptions = {side.name: describe(side.game, side.overrides, base) for side in sides}
        self.possible_agents = [side.name for side in sides]
        self.agents: list[str] = []
        self.encoders = {agent: make_encoder(desc, base) for agent, desc in self.descriptions.items()}
        custom = [agent for agent, encoder in self.encoders.items() if encoder.observation_function is not None]
        if custom:
            raise RetroGamerError(
                f"the side(s) {custom} observe through a custom observation function, which a parallel environment "
                "does not read; describe what they see with board, crop and observe_state."
            )
        self.keys: dict[str, list[str | None]] = {a: [*d.actions, None] for a, d in self.descriptions.items()}
        self._spaces = {agent: ObservationSpace(encoder, observation) for agent, encoder in self.encoders.items()}
        self.observation_spaces: dict[str, spaces.Dict] = {agent: space.space for agent, space in self._spaces.items()}
        self.action_spaces: dict[str, spaces.Space[np.int64]] = {
            agent: spaces.Discrete(len(keys)) for agent, keys in self.keys.items()
        }
        # the game's own limit ends it first where it has one (chase's turn limit), as a draw
        self.max_turns = min(desc.max_turns for desc in self.descriptions.values())
        self._held = {agent: HeldKey() for agent in self.possible_agents}
        self._input = ProgrammaticInput()  # nothing is pressed: the sides' pieces ask their drivers
        self._game: Any = None
        self._values: dict[str, float] = {}
        self.turns = 0

    @property
    def game(self) -> Any:
        """The retro game being played (None before the first ``reset``)."""
        return self._game

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[np.int64]:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, AgentObservation], dict[str, dict[str, Any]]]:
        """Start a new game. ``seed`` seeds the game's own random stream; without one the stream goes on from the
        last game, so one seed makes a whole sequence of games repeat."""
        if seed is not None:
            self._random.seed(seed)
        for held in self._held.values():
            held.key = None
        with game_random(self._random):
            game = self._create_game(self._held)
            for desc in self.descriptions.values():
                check_board_size(game, desc, "this side's description was made for")
            game.input_source, game.view = self._input, None  # each side's encoder draws its own view
            game.start()
        self._game, self.turns = game, 0
        self._values = {agent: self._reward_value(agent) for agent in self.possible_agents}
        self.agents = list(self.possible_agents)
        info = game_info(game, self.turns)
        return self._observations(), {agent: dict(info) for agent in self.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, AgentObservation],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Play one turn: every agent presses ``keys[agent][actions[agent]]`` (its last action presses none)."""
        if not self.agents:
            raise RetroGamerError("the game is over (or not started): call reset() to start one.")
        for agent in self.agents:
            action = actions.get(agent)
            if action is None or not self.action_spaces[agent].contains(action):
                last = len(self.keys[agent]) - 1
                raise RetroGamerError(
                    f"actions[{agent!r}] must be a whole number from 0 to {last}, got {action!r} "
                    f"(every agent acts each turn: {self.agents})."
                )
            self._held[agent].key = self.keys[agent][int(action)]
        with game_random(self._random):
            self._game.step()
        self.turns += 1
        rewards = {}
        for agent in self.agents:
            value = self._reward_value(agent)
            rewards[agent], self._values[agent] = value - self._values[agent], value
        ended = not self._game.playing
        info = game_info(self._game, self.turns)
        terminated = truncated = False
        if ended or self.turns >= self.max_turns:
            results = self._outcome(self._game)
            # only a decided game ends: a draw is the game stopped undecided, which is a truncation
            terminated = ended and any(results[agent] != self._draw for agent in self.agents)
            truncated = not terminated
            infos = {agent: {**info, "outcome": results[agent]} for agent in self.agents}
        else:
            infos = {agent: dict(info) for agent in self.agents}
        observations = self._observations()
        terminations = dict.fromkeys(self.agents, terminated)
        truncations = dict.fromkeys(self.agents, truncated)
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self) -> str | np.ndarray | None:
        """The game as it stands: text for ``"ansi"``, an ``(H, W, 3)`` uint8 image for ``"rgb_array"``."""
        first = self.descriptions[self.possible_agents[0]]
        return render(self.render_mode, self._game, first.character_set or [])

    def close(self) -> None:
        """Nothing to release: the game runs in this process, drawn by nothing but the encoders."""

    def _observations(self) -> dict[str, AgentObservation]:
        """Each agent's observation of the game now, read as a trained policy reads a game (its own view)."""
        return {
            agent: self._spaces[agent].convert(self.encoders[agent].encode(self._game, rendered=False))
            for agent in self.agents
        }

    def _reward_value(self, agent: str) -> float:
        return float(self._game.state[self.descriptions[agent].reward])
