"""A real ``retro.game.Game`` driven headless, one keystroke per turn, for training and evaluation.

Action ``i`` presses ``actions[i]``; the last action is the no-op (no key this turn).
The reward is the change of the game's reward key; ``terminated`` means the game ended,
``truncated`` means ``max_turns`` ran out while it was still going (learning bootstraps
through a truncation: the game did not end, we only stopped watching).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from retro.input import ProgrammaticInput

from retro_gamer.games import Crop, GameDescription, load_factory
from retro_gamer.observation import Observation, ObservationEncoder


def make_encoder(desc: GameDescription, base_dir: Path | None = None, agent: str | None = None) -> ObservationEncoder:
    """The encoder a description asks for; ``agent`` re-centres an egocentric crop on another character."""
    crop = desc.crop if agent is None or desc.crop is None else Crop(agent=agent, radius=desc.crop.radius)
    obs_fn = load_factory(desc.observation_function, base_dir) if desc.observation_function else None
    return ObservationEncoder(desc.character_set, desc.board_size, desc.board, desc.observe_state, crop, obs_fn)


class GameEnvironment:
    """One game at a time; :meth:`reset` starts a fresh one from the factory."""

    def __init__(self, desc: GameDescription, factory: Callable[[], Any], base_dir: Path | None = None):
        if desc.board_size is None or desc.character_set is None:
            raise ValueError("board_size and character_set must be resolved first (see retro_gamer.run.prepare_run)")
        self.desc = desc
        self.factory = factory
        self.keys: list[str | None] = list(desc.actions) + [None]
        self.encoder = make_encoder(desc, base_dir)
        self.input = ProgrammaticInput()
        self.game: Any = None
        self.turns = 0
        self._value = 0.0
        obs_fn = self.encoder.observation_function
        if obs_fn is not None:
            # a custom observation declares its size by example, measured once on a fresh game
            self.encoder.set_extras_size(np.asarray(obs_fn(factory()), dtype=np.float32).size)

    @property
    def n_actions(self) -> int:
        return len(self.keys)

    def reset(self) -> Observation:
        self.game = self.factory()
        self.game.input_source = self.input
        self.game.view = self.encoder.view
        self.game.start()
        self.turns = 0
        self._value = float(self.game.state[self.desc.reward])
        return self.encoder.encode(self.game)

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        """Play one turn. Returns (observation, reward, terminated, truncated)."""
        self.input.press(self.keys[action])
        self.game.step()
        self.turns += 1
        value = float(self.game.state[self.desc.reward])
        reward, self._value = value - self._value, value
        terminated = not self.game.playing
        truncated = not terminated and self.turns >= self.desc.max_turns
        return self.encoder.encode(self.game), reward, terminated, truncated


def agent_characters(agent: Any) -> set[str]:
    char = getattr(agent, "character", "")
    return set(char) if isinstance(char, str) else {c for row in char for c in row}


def discover_characters(factory: Callable[[], Any], actions: list[str], turns: int, seed: int) -> list[str]:
    """Play ``turns`` random turns and list every character any visible agent showed."""
    rng = random.Random(seed)
    keys = list(actions) + [None]
    found: set[str] = set()
    game = None
    inp = ProgrammaticInput()
    for _ in range(max(turns, 1)):
        if game is None or not game.playing:
            game = factory()
            game.input_source, game.view = inp, None
            game.start()
        for agent in game.agents:
            if getattr(agent, "display", True):
                found |= agent_characters(agent)
        inp.press(rng.choice(keys))
        game.step()
    found.discard(" ")
    return sorted(found)
