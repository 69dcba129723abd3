"""A real ``retro.game.Game`` driven headless, one keystroke per turn, for training and evaluation.

Action ``i`` presses ``actions[i]``; the last action is the no-op (no key this turn).
The reward is the change of the game's reward key; ``terminated`` means the game ended,
``truncated`` means ``max_turns`` ran out while it was still going (learning bootstraps
through a truncation: the game did not end, we only stopped watching).
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from retro.input import ProgrammaticInput

from retro_gamer.env.observation import Observation, ObservationEncoder
from retro_gamer.errors import GameFault
from retro_gamer.games import Crop, GameDescription, check_against_game, game_factory, load_factory


def make_encoder(desc: GameDescription, base_dir: Path | None = None, agent: str | None = None) -> ObservationEncoder:
    """The encoder a description asks for; ``agent`` re-centres an egocentric crop on another character."""
    crop = desc.crop if agent is None or desc.crop is None else Crop(agent=agent, radius=desc.crop.radius)
    obs_fn = load_factory(desc.observation_function, base_dir) if desc.observation_function else None
    board_size, character_set = desc.resolved()
    return ObservationEncoder(character_set, board_size, desc.board, desc.observe_state, crop, obs_fn)


class GameEnvironment:
    """One game at a time; :meth:`reset` starts a fresh one from the factory."""

    def __init__(self, desc: GameDescription, factory: Callable[[], Any], base_dir: Path | None = None):
        desc.resolved()
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

    @property
    def dims(self) -> dict[str, Any]:
        """The network's input and output sizes; saved in checkpoints so a policy rebuilds without the game."""
        enc = self.encoder
        return {
            "board_shape": list(enc.board_shape),
            "n_classes": enc.n_classes,
            "extras_size": enc.extras_size,
            "n_actions": self.n_actions,
        }

    def reset(self) -> Observation:
        self.game = self.factory()
        check_board_size(self.game, self.desc, "this run was set up for")
        self.game.input_source = self.input
        self.game.view = self.encoder.view
        self.game.start()
        self.turns = 0
        self._value = self._reward_value()
        return self._observe()

    def step(self, action: int) -> tuple[Observation, float, bool, bool]:
        """Play one turn. Returns (observation, reward, terminated, truncated)."""
        self.input.press(self.keys[action])
        self.game.step()
        self.turns += 1
        value = self._reward_value()
        reward, self._value = value - self._value, value
        terminated = not self.game.playing
        truncated = not terminated and self.turns >= self.desc.max_turns
        return self._observe(), reward, terminated, truncated

    def _reward_value(self) -> float:
        """The reward key's value, refused the turn it stops being a finite number (a NaN would
        otherwise flow silently into the network and metrics.json)."""
        raw = self.game.state.get(self.desc.reward)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise self._not_a_number("reward", self.desc.reward, raw) from None
        if not math.isfinite(value):
            raise self._not_a_number("reward", self.desc.reward, raw)
        return value

    def _observe(self) -> Observation:
        try:
            obs = self.encoder.encode(self.game)
        except (TypeError, ValueError):
            self._check_observed_state()  # a state value gone bad, or else a bug elsewhere (re-raised)
            if self.encoder.observation_function is not None:
                got = np.asarray(self.encoder.observation_function(self.game), dtype=object).ravel()
                raise GameFault(
                    f"the observation function {self.desc.observation_function} returned {got.size} value(s) on turn "
                    f"{self.turns} of an episode ({got.tolist()[:8]}), but {self.encoder.extras_size} numbers at the "
                    "start; it must return the same count of numbers every turn."
                ) from None
            raise
        if obs.extras.size and not np.isfinite(obs.extras).all():
            self._check_observed_state()
            raise GameFault(
                f"the observation function {self.desc.observation_function} returned a NaN or infinite "
                f"value on turn {self.turns} of an episode: {obs.extras.tolist()[:8]}. Return finite numbers."
            )
        return obs

    def _check_observed_state(self) -> None:
        """Refuse the first ``observe_state`` value that is not a finite number, naming it."""
        for key in self.desc.observe_state:
            if not _finite_number(self.game.state.get(key)):
                raise self._not_a_number("observe_state entry", key, self.game.state.get(key)) from None

    def _not_a_number(self, what: str, key: str, value: Any) -> GameFault:
        when = f"on turn {self.turns} of an episode" if self.turns else "when the game started"
        return GameFault(
            f"game.state['{key}'] (the {what}) became {value!r} {when}; it must stay a finite number "
            f"(int or float) every turn. Fix the game so '{key}' always holds a number."
        )


def _finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def check_board_size(game: Any, desc: GameDescription, trained: str) -> None:
    """Refuse a game whose board is not the size the network was built for (the game grew, or a
    policy meets another game), saying what was trained on and what is here now."""
    now, (board_size, _) = tuple(game.board_size), desc.resolved()
    if now != tuple(board_size):
        was = "x".join(map(str, board_size))
        raise GameFault(
            f"the game's board is {now[0]}x{now[1]}, but {trained} a {was} board "
            f"(game {desc.name or desc.factory}; config.toml [metadata] board_size = {list(board_size)}). "
            "A network reads a board of one size. Use the game it was trained on (or restore the board size), "
            f"or train a new run for this game: retro-gamer create --game GAME --output NEW_RUN_DIR"
        )


def resolve_game(
    desc: GameDescription, source: str, base_dir: Path | None, exploration_turns: int, seed: int
) -> GameDescription:
    """Check the description against a real game and fill in what is discovered (board size, characters, the
    version of its rules): what a run directory records, and what a Gymnasium environment of the game needs too
    (retro_gamer.adapters), so both see a game the same way."""
    factory = game_factory(desc, base_dir)
    game = factory()
    check_against_game(desc, game, source)
    characters = desc.character_set
    if characters is None:
        characters = discover_characters(factory, desc.actions, exploration_turns, seed)
    return replace(desc, board_size=tuple(game.board_size), character_set=list(characters), rules=rules_of(factory))


def agent_characters(agent: Any) -> set[str]:
    char = getattr(agent, "character", "")
    return set(char) if isinstance(char, str) else {c for row in char for c in row}


def random_play(factory: Callable[[], Any], actions: list[str], seed: int) -> Iterator[Any]:
    """Endless random play with no view: yields each game once started and again after every turn,
    the turn that ends it included; the next item is then a fresh game. ``islice`` it to a length."""
    rng = random.Random(seed)
    keys = list(actions) + [None]
    inp = ProgrammaticInput()
    while True:
        game = factory()
        game.input_source, game.view = inp, None
        game.start()
        yield game
        while game.playing:
            inp.press(rng.choice(keys))
            game.step()
            yield game


def discover_characters(factory: Callable[[], Any], actions: list[str], turns: int, seed: int) -> list[str]:
    """Play ``turns`` random turns and list every character any visible agent showed (the last turn
    of a game too: an explosion, a crash), plus the one-character ``character`` of every agent class the
    game's own modules define (a snake's body segment exists only once it eats, which random play may
    never do)."""
    found: set[str] = set(declared_characters(factory))
    for game in islice(random_play(factory, actions, seed), max(turns, 1) + 1):
        for agent in game.agents:
            if getattr(agent, "display", True):
                found.update(agent_characters(agent))
    found.discard(" ")
    return sorted(found)


def _module_name(factory: Callable[[], Any]) -> str | None:
    return getattr(getattr(factory, "func", factory), "__module__", None)  # functools.partial: an opponent filled in


def rules_of(factory: Callable[[], Any]) -> str | None:
    """The version of the rules the factory's module declares (a module-level ``RULES`` text), if any."""
    import sys

    module = sys.modules.get(_module_name(factory) or "")
    rules = getattr(module, "RULES", None)
    return str(rules) if rules is not None else None


def check_rules(desc: GameDescription, factory: Callable[[], Any], what: str) -> None:
    """Refuse to go on training a run under rules other than those it was created with: its policy has
    learned another game. A module without ``RULES`` never refuses."""
    now = rules_of(factory)
    if now is not None and desc.rules != now:
        was = (
            f"version {desc.rules}" if desc.rules is not None else "an earlier version (before versions were recorded)"
        )
        raise GameFault(
            f"{what} was created under {was} of the rules of {desc.name or desc.factory}; the game is now at version "
            f"{now}, so its policy learned another game. Start a new run (or, in the adversarial pipeline, `dvc repro`)."
        )


def declared_characters(factory: Callable[[], Any]) -> set[str]:
    """Single characters set as a class attribute ``character`` by the classes of the factory's module
    (and of the modules inside it, when it is a package: ``retro.examples.beast.agents.player``, ...)."""
    import inspect
    import sys

    module = _module_name(factory)
    if not module or module == "__main__":
        return set()
    found: set[str] = set()
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == module or name.startswith(module + ".")):
            continue
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            char = cls.__dict__.get("character")
            if cls.__module__ == name and isinstance(char, str) and len(char) == 1 and char != " ":
                found.add(char)
    return found


def ends_by_itself(factory: Callable[[], Any], actions: list[str], turns: int, seed: int) -> bool:
    """Whether random play ends the game (``game.end()``) within ``turns`` turns."""
    return any(not game.playing for game in islice(random_play(factory, actions, seed), turns + 1))
