"""Game → numbers. Boards become uint8 grids of character indices; state keys become floats.

Index 0 is a blank (or a character outside the character set: warned about once), 1..C the characters in order,
and, for egocentric crops, C+1 marks cells beyond the board edge so walls are visible.
The grid is written from the occupied cells only, instead of rebuilding a list of lists every turn;
one-hot expansion happens on the network side, so replay memory stores one byte per cell.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
from retro.game import agent_occupied_positions
from retro.view import get_agent_character  # public in retro.view (its __all__), private in retro.views._util
from retro.views import HeadlessView

from retro_gamer.games import Crop


class UnseenCharacterWarning(UserWarning):
    """A game drew a character its run's character set lacks (the network sees a blank there)."""


_warned: set[tuple[str, str]] = set()  # (character, character set) pairs already warned about in this process


class Observation(NamedTuple):
    board: np.ndarray  # uint8 (h, w) character indices; shape (0, 0) when the board is not observed
    extras: np.ndarray  # float32 (k,) observed state values or a custom observation


def _z(agent: Any) -> float:
    return getattr(agent, "z", 0) or 0


def top_agents(game: Any) -> dict[tuple[int, int], Any]:
    """The agent each occupied cell shows: the highest ``z``, the first added on a tie, as retro's views draw.

    Read from ``game.agents`` rather than ``game.get_agents_by_position()``: retro refreshes that
    cache only after an agent's ``play_turn``, so it lags behind moves made in ``handle_keystroke``
    and in a game's setup (snake's apple sits at (0, 0) on turn 0 there).
    """
    top: dict[tuple[int, int], Any] = {}
    for agent in game.agents:
        if not getattr(agent, "display", True):
            continue
        if getattr(agent, "size", None) is None:  # one cell: skip building a list of positions (beast has 250 such)
            x, y = agent.position
            other = top.get((x, y))
            if other is None or _z(agent) > _z(other):
                top[(x, y)] = agent
            continue
        for position in agent_occupied_positions(agent):
            other = top.get(position)
            if other is None or _z(agent) > _z(other):
                top[position] = agent
    return top


def turn_map(game: Any, layouts: dict[tuple[int, int], bool]) -> dict[tuple[int, int], list] | None:
    """retro's own map of the turn just played (position → the agents there, in the order added), which
    its terminal view draws, when it is known to be up to date; else None (use :func:`top_agents`).

    retro builds the map at the end of ``game.step()`` and rebuilds it only after an agent's ``play_turn``,
    so it is current when no agent after the last one with a ``play_turn`` handles keystrokes (those moves
    would come after the rebuild: a game whose only mover reads the keyboard), and when nothing has
    invalidated it since (``game._position_cache`` is still that map). Drawing from it saves scanning every agent
    again each turn (games with many agents spend most of a turn drawing; benchmarks/env_speed.py), and it is
    what retro's terminal view shows. ``layouts`` caches the rule per agent list, keyed by its length and last agent.

    ``_position_cache`` is the one private attribute of retro that retro-gamer reads, here only. retro has no
    public way to ask whether its map is still current: ``game.get_agents_by_position()`` answers with a rebuilt
    map when it is not and keeps that rebuild, so the game's own ``is_empty`` later in the turn would see where
    agents were when we drew, not where they moved since. Read with ``getattr``: a retro without the attribute
    only makes every turn take the :func:`top_agents` path. pyproject.toml pins ``retro-games<3`` for it.
    """
    positions = game.agent_positions
    if positions is not getattr(game, "_position_cache", None) or not game.agents:
        return None
    agents = game.agents
    key = (len(agents), id(agents[-1]))
    current = layouts.get(key)
    if current is None:
        last_turn = max((i for i, a in enumerate(agents) if hasattr(a, "play_turn")), default=-1)
        last_key = max((i for i, a in enumerate(agents) if hasattr(a, "handle_keystroke")), default=-1)
        current = layouts[key] = last_turn >= 0 and last_turn >= last_key
    return positions if current else None


def _ended(game: Any) -> bool:
    """Whether ``game`` has played turns and stopped (``game.end()``); a game not started yet has not ended."""
    return not game.playing and getattr(game, "turn_number", 0) > 0


class IndexView(HeadlessView):
    """A retro ``HeadlessView`` that renders into a numpy grid of character indices.

    Games call ``render`` after every step; ``board_characters`` is still available (built on
    demand) for code that expects the stock view. With a ``crop`` only its window is drawn (the rest
    of the grid stays blank): an egocentric observation reads nothing else, so agents outside the window
    are never drawn.
    """

    def __init__(self, character_set: list[str], board_size: tuple[int, int], crop: Crop | None = None):
        self.index = {c: i + 1 for i, c in enumerate(character_set)}
        self.characters = [" "] + list(character_set)
        self.off_board = len(character_set) + 1
        width, height = board_size
        self.crop = crop
        pad = crop.radius if crop else 0
        self.padded = np.full((height + 2 * pad, width + 2 * pad), self.off_board, dtype=np.uint8)
        self.grid = self.padded[pad : pad + height, pad : pad + width]
        self.center = (width // 2, height // 2)  # the window's centre: its agent where last seen (the board's at first)
        # drawn into a flat bytearray (a Python store per cell is cheaper than numpy's), copied in once
        self._cells = bytearray(width * height)
        self._blank = bytes(width * height)
        self._cells_grid = np.frombuffer(self._cells, dtype=np.uint8).reshape(height, width)
        self._layouts: dict[tuple[int, int], bool] = {}  # see turn_map

    def on_game_start(self, game: Any) -> None:
        self._layouts = {}  # a new game: agent lists seen before say nothing of it
        self.redraw(game)

    def render(self, game: Any) -> None:
        """The end of a turn (retro calls it in ``game.step()``): drawn from retro's map of the turn where that is current."""
        positions = turn_map(game, self._layouts)
        if positions is None:
            self.redraw(game)
        else:
            self._draw(positions.items(), self._bounds(game), final=_ended(game))

    def redraw(self, game: Any) -> None:
        """Drawn from the agents themselves: right whatever happened since the last turn."""
        self._draw(top_agents(game).items(), self._bounds(game), final=_ended(game))

    def window(self) -> np.ndarray:
        """The crop's window (a view into the grid, off-board cells marked) around :attr:`center`."""
        if self.crop is None:
            raise ValueError("only a cropped view has a window")
        x, y = self.center
        side = 2 * self.crop.radius + 1
        return self.padded[y : y + side, x : x + side]

    def _bounds(self, game: Any) -> tuple[int, int, int, int]:
        """The cells to draw, ``(x0, y0, x1, y1)`` with the ends excluded: the board, or the crop's window
        on it around its agent (where it last was, when the game has none of that name now)."""
        height, width = self.grid.shape
        if self.crop is None:
            return 0, 0, width, height
        agent = game.agents_by_name.get(self.crop.agent)
        if agent is not None:
            self.center = agent.position
        (x, y), r = self.center, self.crop.radius
        return max(0, x - r), max(0, y - r), min(width, x + r + 1), min(height, y + r + 1)

    def _draw(
        self, occupied: Iterable[tuple[tuple[int, int], Any]], bounds: tuple[int, int, int, int], final: bool
    ) -> None:
        """Each cell within ``bounds`` shows its agent: the one given, or of a list of them (retro's map) the
        highest ``z``, the first added on a tie, as retro's views draw. ``final``: the game ended this turn."""
        cells, index = self._cells, self.index
        width = self.grid.shape[1]
        x0, y0, x1, y1 = bounds
        cells[:] = self._blank
        for (x, y), here in occupied:
            if x0 <= x < x1 and y0 <= y < y1:
                agent = here if type(here) is not list else here[0] if len(here) == 1 else max(here, key=_z)
                char = agent.character
                code = index.get(char) if type(char) is str else None
                if code is None:
                    char = get_agent_character(agent, (x, y))  # a multi-cell agent's character here
                    code = index.get(char)
                    if code is None:
                        code = self.unknown(char, final)
                cells[y * width + x] = code
        self.grid[:] = self._cells_grid

    def unknown(self, char: str, final: bool = False) -> int:
        """A character outside the character set is drawn blank (0); say so once per character, unless it shows
        only as the game ends (``final``: nav's explosion): no action is chosen on the last board of a game that
        ended, and its value is never learned from, so the agent loses nothing by not seeing it."""
        known = "".join(self.characters[1:])
        if not final and (char, known) not in _warned and char != " ":
            _warned.add((char, known))
            message = (
                f"the game drew {char!r}, which is not in the character set {known!r}, so the agent sees a blank "
                f"there. Add it to the game's character_set (conf/game/NAME.yaml or [tool.retro-gamer]: "
                f"character_set = [..., {char!r}]) and create the run again."
            )
            # explicit: shown once with no source line (the line would be ours, not the game's)
            warnings.warn_explicit(UnseenCharacterWarning(message), UnseenCharacterWarning, "retro-gamer", 0)
        return 0

    @property
    def board_characters(self) -> list[list[str]]:
        chars = self.characters
        return [[chars[i] if i < len(chars) else " " for i in row] for row in self.grid.tolist()]


class ObservationEncoder:
    """Reads an :class:`IndexView` (and the game's state) into a fixed-shape :class:`Observation`."""

    def __init__(
        self,
        character_set: list[str],
        board_size: tuple[int, int],
        board: bool = True,
        observe_state: list[str] | None = None,
        crop: Crop | None = None,
        observation_function: Any = None,
    ):
        self.character_set = list(character_set)
        self.use_board = board and observation_function is None
        self.observe_state = list(observe_state or [])
        self.crop = crop
        self.observation_function = observation_function
        width, height = board_size
        if not self.use_board:
            shape = (0, 0)
        elif crop is not None:
            shape = (2 * crop.radius + 1, 2 * crop.radius + 1)
        else:
            shape = (height, width)
        self.board_shape = shape
        # classes the network one-hot encodes: blank, each character, and off-board for crops
        self.n_classes = len(self.character_set) + 1 + (1 if crop is not None else 0)
        self.view = IndexView(self.character_set, board_size, crop)
        self._board = np.zeros(shape, dtype=np.uint8)
        self.extras_size = len(self.observe_state)
        self._extras = np.zeros(self.extras_size, dtype=np.float32)

    def set_extras_size(self, size: int) -> None:
        """Custom observation functions declare their size by example (measured once at start)."""
        self.extras_size = size
        self._extras = np.zeros(size, dtype=np.float32)

    def encode(self, game: Any, rendered: bool = True) -> Observation:
        """Observation of ``game`` now. ``rendered=False`` renders first (the game has another view).

        The returned arrays are reused on the next call: copy them to keep them.
        """
        if self.observation_function is not None:
            self._extras[:] = np.asarray(self.observation_function(game), dtype=np.float32).ravel()
            return Observation(self._board, self._extras)
        if self.use_board:
            if not rendered:
                self.view.redraw(game)
            self._board[:] = self.view.grid if self.crop is None else self.view.window()
        state = game.state
        extras = self._extras
        for i, key in enumerate(self.observe_state):
            extras[i] = state[key]
        return Observation(self._board, extras)
