"""Any game retro-gamer can load as a Gymnasium environment, seeing exactly what the trainer's agent sees.

The game is resolved as ``retro-gamer create --game SPEC`` resolves it (:func:`retro_gamer.config.compose.compose_run`:
a Hydra game name, a file, a package folder, a module or ``module:factory`` with its ``[tool.retro-gamer]`` table,
relative to the current folder, with the same automatic choices), then played by the trainer's own
:class:`~retro_gamer.env.environment.GameEnvironment`, so a policy trained with Stable-Baselines3, CleanRL or
retro-gamer reads the same numbers:

* actions: ``Discrete(len(keys))``; action ``i`` presses ``env.keys[i]``, the description's keys in order, and
  the last one presses no key;
* observations: a ``Dict`` with ``"board"``, the board (or the egocentric window the description or the automatic
  choice gives) as a flat ``MultiDiscrete`` of character indices (0 blank, 1… the character set, then off-board for
  a window), row by row, and ``"state"``, the observed ``game.state`` values (or a custom observation function's
  numbers) as a float ``Box``. A part the game does not observe is left out of the ``Dict`` rather than given a
  size of zero, which neither Gymnasium's nor SB3's checker accepts; a description always observes one of them.
  ``observation="onehot"`` makes ``"board"`` a ``(channels, height, width)`` float ``Box`` of 0 and 1, one channel
  per index, for convolutional policies. SB3 reads either with ``"MultiInputPolicy"``; a library that wants one
  array (CleanRL) wraps the environment in ``gymnasium.wrappers.FlattenObservation``;
* reward: the change of the description's reward key each turn; ``terminated`` when the game ends, ``truncated``
  when ``max_turns`` turns ran out first;
* randomness: retro games draw from Python's global ``random``. Each environment owns a ``random.Random`` stream,
  seeded by ``reset(seed=...)`` as ``random.seed`` would seed the game, and swapped into the global generator only
  around the game's own code (its factory, its turns, a custom observation); the caller's state is put back after
  each, so environments stepped side by side play the same episodes as each alone, and the caller's ``random``
  is never touched. Randomness from elsewhere (numpy's, a game's own ``Random``) is the game's to seed;
* rendering: ``"ansi"`` is the board as text in a frame with the game's state below it, ``"rgb_array"`` the same
  board drawn into an image (``RecordVideo`` writes it to a video).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from retro_gamer.extras import require_extra

# [gym] brings [train] too: games are resolved as the CLI resolves them, with Hydra
require_extra("gym", "A game as a Gymnasium environment (retro_gamer.adapters)")
require_extra("train", "A game as a Gymnasium environment (retro_gamer.adapters)")

import gymnasium  # noqa: E402  (after the checks above, so a missing extra is one line naming it)
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from retro_gamer.config.compose import compose_run  # noqa: E402
from retro_gamer.env.environment import GameEnvironment, resolve_game  # noqa: E402
from retro_gamer.env.observation import Observation, ObservationEncoder  # noqa: E402
from retro_gamer.errors import RetroGamerError  # noqa: E402
from retro_gamer.games import GameDescription, game_factory  # noqa: E402
from retro_gamer.tracking.recording import board_rows  # noqa: E402

ObservationKind = Literal["indices", "onehot"]
OBSERVATIONS: tuple[ObservationKind, ...] = ("indices", "onehot")
CELL = (12, 20)  # pixels per board cell in an rgb_array frame (width, height): even, as video encoders want
# A colour per character-set index (cycled), on a dark background; characters outside the set are grey.
PALETTE = [(255, 214, 10), (80, 220, 100), (255, 90, 90), (90, 170, 255), (230, 120, 255), (80, 230, 230)]
BACKGROUND, FRAME, UNKNOWN = (16, 16, 24), (90, 90, 110), (200, 200, 200)
RENDER_MODES = ["ansi", "rgb_array"]


class RetroGameEnv(gymnasium.Env[dict[str, Any], np.int64]):
    """A retro game as a Gymnasium environment (see the module docstring for its spaces, seeding and rendering).

    ``game``: anything ``retro-gamer create --game`` takes, resolved from ``base_dir`` (default: the current
    folder). ``overrides``: the Hydra overrides ``retro-gamer create`` takes after it, for the game
    (``game.max_turns=500``, ``game.crop=null``) or the settings that decide what the agent sees.
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 10}

    def __init__(
        self,
        game: str,
        overrides: Sequence[str] = (),
        observation: ObservationKind = "indices",
        render_mode: str | None = None,
        base_dir: str | Path | None = None,
    ):
        check_options(observation, render_mode)
        self.render_mode = render_mode
        self.observation = observation
        self._random = random.Random()  # from the OS's entropy until reset(seed=...)
        base = Path(base_dir or Path.cwd()).resolve()
        with game_random(self._random):  # resolving plays the game (its factory, random turns to find its characters)
            desc = describe(game, overrides, base)
            self.game_env = GameEnvironment(desc, game_factory(desc, base), base)
        self.description = desc
        self.keys: list[str | None] = list(self.game_env.keys)
        self.action_space = spaces.Discrete(self.game_env.n_actions)
        self._space = ObservationSpace(self.game_env.encoder, observation)
        self.observation_space = self._space.space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new game. ``seed`` seeds the game's own random stream (and Gymnasium's ``np_random``); without
        one the stream goes on from the last episode, so one seed makes a whole sequence of episodes repeat."""
        super().reset(seed=seed)
        if seed is not None:
            self._random.seed(seed)
        with game_random(self._random):
            obs = self.game_env.reset()
        return self._space.convert(obs), self._info()

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Play one turn: press ``keys[action]`` (the last action presses none)."""
        if not self.action_space.contains(action):
            last = self.game_env.n_actions - 1
            raise RetroGamerError(f"action must be a whole number from 0 to {last}, got {action!r}.")
        with game_random(self._random):
            obs, reward, terminated, truncated = self.game_env.step(int(action))
        return self._space.convert(obs), reward, terminated, truncated, self._info()

    def _info(self) -> dict[str, Any]:
        return game_info(self.game_env.game, self.game_env.turns)

    def render(self) -> str | np.ndarray | None:
        """The game as it stands: text for ``"ansi"``, an ``(H, W, 3)`` uint8 image for ``"rgb_array"``."""
        return render(self.render_mode, self.game_env.game, self.description.character_set or [])


def check_options(observation: str, render_mode: str | None) -> None:
    """Refuse an observation kind or render mode the environments do not have, naming the ones they do."""
    if observation not in OBSERVATIONS:
        raise RetroGamerError(f"observation must be one of {', '.join(OBSERVATIONS)}, got {observation!r}.")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise RetroGamerError(f"render_mode must be None, 'ansi' or 'rgb_array', got {render_mode!r}.")


@contextmanager
def game_random(stream: random.Random) -> Iterator[None]:
    """Python's global ``random`` is ``stream`` inside, and the caller's again after (``stream`` goes on from where
    the game left it): an environment's own random stream, swapped in around the game's own code.

    Swapped by state rather than by replacing ``random``'s hidden instance: a game's ``from random import
    randint`` holds that instance's bound method."""
    outside = random.getstate()
    random.setstate(stream.getstate())
    try:
        yield
    finally:
        stream.setstate(random.getstate())
        random.setstate(outside)


def describe(game: str, overrides: Sequence[str], base: Path) -> GameDescription:
    """The description of ``game`` as ``retro-gamer create --game GAME OVERRIDES`` run in ``base`` records it, the
    board size and characters found: what the trainer's agent would see and be paid. It plays the game (its factory,
    random turns to find characters), so call it inside :func:`game_random`."""
    cfg, source, _ = compose_run(game, list(overrides), base)
    return resolve_game(cfg.game, source, base, cfg.trainer.exploration_turns, cfg.trainer.seed)


class ObservationSpace:
    """The Gymnasium space of an encoder's observations (the module docstring says which), and the conversion of an
    :class:`~retro_gamer.env.observation.Observation` into it: one definition for every environment here."""

    def __init__(self, encoder: ObservationEncoder, observation: ObservationKind = "indices"):
        self.observation = observation
        self._classes = encoder.n_classes
        parts: dict[str, spaces.Space[Any]] = {}
        if encoder.use_board:
            height, width = encoder.board_shape
            if observation == "onehot":
                parts["board"] = spaces.Box(0.0, 1.0, (self._classes, height, width), np.float32)
            else:
                # int64, Gymnasium's default: SB3 sums the sizes in the space's own dtype, which a byte overflows
                parts["board"] = spaces.MultiDiscrete(np.full(height * width, self._classes, dtype=np.int64))
        if encoder.extras_size:
            # any float32: a state value's range is the game's; unbounded, the checkers warn of infinite bounds
            big = float(np.finfo(np.float32).max)
            parts["state"] = spaces.Box(-big, big, (encoder.extras_size,), np.float32)
        self.space = spaces.Dict(parts)
        self._observed = frozenset(parts)

    def convert(self, obs: Observation) -> dict[str, np.ndarray]:
        """The encoder's arrays as the space holds them; copies, since the encoder reuses its own."""
        out: dict[str, np.ndarray] = {}
        if "board" in self._observed:
            if self.observation == "onehot":
                out["board"] = (obs.board[None] == np.arange(self._classes)[:, None, None]).astype(np.float32)
            else:
                out["board"] = obs.board.ravel().astype(np.int64)
        if "state" in self._observed:
            out["state"] = obs.extras.copy()
        return out


def game_info(game: Any, turns: int) -> dict[str, Any]:
    """The turns played and a copy of ``game.state``: what a game counts besides its reward (snake's apples)."""
    return {"turns": turns, "state": dict(game.state)}


def render(render_mode: str | None, game: Any, character_set: list[str]) -> str | np.ndarray | None:
    """``game`` as it stands: for ``"ansi"`` the board as text in a frame with the game's state below it, for
    ``"rgb_array"`` an ``(H, W, 3)`` uint8 image of it (:func:`draw_board`); None without a mode or a game."""
    if render_mode is None or game is None:
        return None
    rows = board_rows(game)
    if render_mode == "ansi":
        border = "+" + "-" * len(rows[0]) + "+" if rows else "++"
        state = "  ".join(f"{key}: {value}" for key, value in game.state.items())
        return "\n".join([border, *(f"|{row}|" for row in rows), border, state]) + "\n"
    return draw_board(rows, character_set)


def draw_board(rows: list[str], character_set: list[str]) -> np.ndarray:
    """The board's rows of text drawn as an ``(H, W, 3)`` uint8 image, one ``CELL`` per character in a frame one
    cell wide, each character in its character-set colour."""
    from PIL import Image, ImageDraw

    width, height = CELL
    columns = max((len(row) for row in rows), default=0)
    image = Image.new("RGB", ((columns + 2) * width, (len(rows) + 2) * height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 2, height // 2, image.width - width // 2, image.height - height // 2], outline=FRAME)
    font = _font(height)
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(character_set)}
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char != " ":
                left, top, right, bottom = draw.textbbox((0, 0), char, font=font)
                corner = ((x + 1.5) * width - (left + right) / 2, (y + 1.5) * height - (top + bottom) / 2)
                draw.text(corner, char, fill=colour.get(char, UNKNOWN), font=font)
    return np.asarray(image, dtype=np.uint8)


def _font(size: int) -> Any:
    """Pillow's own font at ``size`` pixels; its small bitmap font where Pillow was built without FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size - 4)
    except (ImportError, TypeError, OSError):  # no FreeType, or a Pillow older than 10.1
        return ImageFont.load_default()
