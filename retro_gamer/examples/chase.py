"""Chase: the player ``@`` collects coins ``$`` in a small walled arena while the enemy ``E`` hunts it.

The running example of docs/integrating-a-trained-model.rst, grown into a game worth watching, and
the game of the adversarial pipeline (player and enemy trained against each other in rounds, then
a round-robin tournament: :mod:`retro_gamer.adversarial.tournament`).

Rules (version :data:`RULES`)
-----------------------------
* A 16x10 board with 28 wall cells ``#`` (:data:`LAYOUT`): pillars and corners to run around, so
  the player can shake off a chaser and the enemy must plan a path. Pieces move one cell a turn
  (arrow keys) and cannot walk into a wall or off the board; pressing nothing stays put.
* Two coins are on the board at any time; the player collects one by stepping on it
  (``state['coins']`` +1) and it reappears on a random free cell at least 3 steps away.
* **The player wins** by collecting :data:`COINS_TO_WIN` coins within :data:`TURN_LIMIT` turns (200,
  the description's ``max_turns``). **The enemy wins** by catching the player (stepping onto its cell, or the
  player walking into it: ``state['caught'] = 1``) or by the clock: a player still short of its coins at the
  turn limit loses (``state['caught']`` stays 0). A game stopped before either, by someone else, is a **draw**.
  :func:`outcome` is that rule, read from a finished game: the tournament judges with it and nothing else.
* Why coins decide: under the first rules (version 1) surviving 200 turns was the player's win and
  its reward paid +0.01 a turn, so hiding in a corner and collecting nothing was a safe optimum
  that rated well. Under versions 2 and 3 hiding earned a draw at best.
* Why three coins (version 3): under version 2 five coins won, and trained players seldom reached
  five within the turn limit (benchmarks/results/adversarial_full_seed0_rescored_3coins.json).
* Why the clock wins for the enemy (version 4): an enemy as fast as the player seldom catches a trained
  player on a board with pillars; what a good enemy does is guard the coins, and under version 3 that
  earned only a draw. Draws hid the enemy's progress and squeezed every rating toward the middle (a
  tournament under version 3 with its draws scored both ways:
  benchmarks/results/adversarial_full_10x200k_seed0_tournament.json, docs/adversarial-training.rst). Now
  every game between the sides has a winner, and each side is paid for the skill that wins it.
* Turn order: every side decides from the same position (the end of the previous turn; the
  keyboard side presses its key, the AI sides ask their policy in :meth:`Arena.play_turn`), then
  the player moves, then the enemy. Both perspectives therefore see the same kind of position.
* Starts are random (Python's global ``random``): the player anywhere free, the enemy at least
  8 steps away along the paths.

Rewards (both keys are in ``game.state`` in every variant; a variant's description names its own)
----------------------------------------------------------------------------------------------------
The rewards follow the outcome and are zero-sum but for shaping: what one side gains, the other loses.

``player_reward``: +1/:data:`COINS_TO_WIN` a coin (so the coins of a win add up to +1); -1 when
caught or out of time. ``enemy_reward``: +1 for a catch or the clock; -1/:data:`COINS_TO_WIN` for every
coin the player takes. A win is worth +1; a loss -1 plus a third for each coin collected before it:
partial progress, which keeps the player collecting and the enemy denying coins until the end.

Shaping, potential-based (a step's worth is the change of a distance, so it adds up to the change
between the first and last position and cannot be farmed by walking back and forth): the enemy gets
+0.02 for every step the path distance to the player shrinks (-0.02 when it grows; the true path
distance, so running into a wall that only looks closer earns nothing); the player +0.01 for every
step the path distance to the nearest coin shrinks. No side is paid for time passing: a player paid
to survive would hide, an enemy charged per turn would be paid by a quick loss.

Observation (``[tool.retro-gamer]`` in ``retro_gamer/examples/pyproject.toml``)
---------------------------------------------------------------------------------
A 7x7 egocentric crop (``radius = 3``) around the trained piece (walls nearby, beyond-edge cells
marked) plus seven numbers from ``game.state``, identical in every variant so a policy trained on
one side can drive that side in any other variant: ``gap_dx``/``gap_dy`` (player minus enemy
position, as fractions of the board), ``gap`` (path distance between them / 26),
``coin_dx``/``coin_dy`` (nearest coin minus player), ``progress`` (the player's coins as a
fraction of :data:`COINS_TO_WIN`) and ``clock`` (turns played as a fraction of the turn limit). The table describes the enemy; the player run
overrides two keys on the command line::

    retro-gamer create --game retro_gamer.examples.chase:create_enemy_training_game --output runs/enemy
    retro-gamer create --game retro_gamer.examples.chase:create_player_training_game --output runs/player \\
        game.reward=player_reward "game.crop={agent: player, radius: 3}"

The round-0 baseline (``opponent=None``) is scripted, not random: :class:`ChaserPolicy` steps
along a shortest path to the player 3 turns in 4 (a random key otherwise), and
:class:`CoinGrabberPolicy` steps toward the nearest coin, fleeing when the enemy is within 3 steps
(also 3 turns in 4). A random enemy almost never catches anyone and a random player never scores,
so a side trained against random play learns little worth watching; against these scripts each
side has a real opponent from round 1, and the scripts are beatable (a player can circle a pillar,
a chaser that sometimes stumbles can be ambushed), so improvement shows in the tournament.

A trained policy records the rules it was trained on (``[metadata] rules`` in its ``config.toml``,
from :data:`RULES`); one trained on other rules is refused as an opponent, saying which.

Variants: :func:`create_enemy_training_game` (the enemy reads the keyboard),
:func:`create_player_training_game` (the player does; also a human against a trained enemy),
:func:`create_match_game` (both sides AI: the tournament); and :func:`parallel_env`, both sides as the agents of
a PettingZoo ``ParallelEnv`` (the ``[pettingzoo]`` extra). ``opponent`` is a policy source (a run
directory or an MLflow model URI, loaded once per process by :func:`load_opponent`), an opponent
pool file (``opponents.json``: each game draws one member, see :mod:`retro_gamer.adversarial.pool`)
or an object with ``get_action(game)``.

    python -m retro_gamer.examples.chase [ENEMY_SOURCE]    # play against the scripted or a trained enemy
"""

from __future__ import annotations

import functools
import os
import random
import sys
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retro.game import Game

if TYPE_CHECKING:
    from retro_gamer.adapters.pettingzoo_env import HeldKey, ParallelGameEnv

MOVES = {"KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_LEFT": (-1, 0), "KEY_DOWN": (0, 1)}
KEYS = list(MOVES)

LAYOUT = (
    "................",
    ".##..#....#..##.",
    ".#............#.",
    "....##....##....",
    "......#..#......",
    "......#..#......",
    "....##....##....",
    ".#............#.",
    ".##..#....#..##.",
    "................",
)
BOARD_SIZE = (len(LAYOUT[0]), len(LAYOUT))
CHARACTERS = ["#", "$", "@", "E"]
# the rules' version: a policy trained under other rules is refused (see _load_policy); bump it when the rules,
# rewards or observation change meaning
RULES = "4"
RULES_SUMMARY = {
    None: "version 1 (before versions were recorded): surviving 200 turns won, the player was paid +0.01 a turn",
    "2": "version 2: 5 coins win for the player, a catch wins for the enemy, else a draw at 200 turns",
    "3": "version 3: 3 coins win for the player, a catch wins for the enemy, else a draw at 200 turns",
    "4": "version 4: 3 coins within 200 turns win for the player, a catch or the turn limit wins for the enemy",
}
TURN_LIMIT = 200
COINS = 2
COINS_TO_WIN = 3
START_GAP = 8  # the enemy starts at least this many steps from the player
COIN_GAP = 3  # a coin reappears at least this many steps from the player
GAP_SCALE = BOARD_SIZE[0] + BOARD_SIZE[1]  # path distances are divided by this for `gap`

# zero-sum: the enemy's reward per player coin is -COIN; the clock pays as a catch does
CATCH, CAUGHT, COIN = 1.0, -1.0, 1.0 / COINS_TO_WIN
ENEMY_STEP, COIN_STEP = 0.02, 0.01  # potential-based shaping per step of path distance
GREED = 0.75  # how often the scripted sides follow their script rather than a random key
FLEE_GAP = 3

FEATURES = ["gap_dx", "gap_dy", "gap", "coin_dx", "coin_dy", "progress", "clock"]
WIN, DRAW, LOSS = "win", "draw", "loss"
PLAYER, ENEMY = "player", "enemy"


# -- the arena's geometry -------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _distances(board_size: tuple[int, int], walls: frozenset) -> dict:
    """Path distances between every pair of free cells (breadth-first search from each)."""
    width, height = board_size
    free = [(x, y) for y in range(height) for x in range(width) if (x, y) not in walls]
    table = {}
    for source in free:
        dist = {source: 0}
        queue = deque([source])
        while queue:
            x, y = queue.popleft()
            for dx, dy in MOVES.values():
                nxt = (x + dx, y + dy)
                if nxt not in dist and nxt not in walls and 0 <= nxt[0] < width and 0 <= nxt[1] < height:
                    dist[nxt] = dist[(x, y)] + 1
                    queue.append(nxt)
        table[source] = dist
    return table


def _arena(game: Any) -> Arena | None:
    return game.agents_by_name.get(Arena.name)


def walls_of(game: Any) -> frozenset:
    arena = _arena(game)
    return arena.walls if arena is not None else frozenset()


def path_distance(game: Any, a: tuple[int, int], b: tuple[int, int]) -> int:
    """Steps from ``a`` to ``b`` around the walls (Manhattan distance on a board without an arena)."""
    arena = _arena(game)
    if arena is None:
        return abs(a[0] - b[0]) + abs(a[1] - b[1])
    return arena.table.get(a, {}).get(b, 10 * GAP_SCALE)


def legal_moves(game: Any, position: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """The keys that move a piece at ``position`` somewhere, and where to."""
    walls, (x, y) = walls_of(game), position
    out = {}
    for key, (dx, dy) in MOVES.items():
        target = (x + dx, y + dy)
        if game.on_board(target) and target not in walls:
            out[key] = target
    return out


# -- pieces ---------------------------------------------------------------------------------------

_UNPLANNED = object()


class _Piece:
    """Moves one cell per key; the game ends when the enemy and the player meet.

    Keyboard-driven pieces move in ``handle_keystroke``; the others move in ``play_turn`` with the
    key :meth:`choose` gives, decided at the end of the previous turn when an :class:`Arena` is in
    the game (so every side decides from the same position), else decided there and then.
    """

    z = 1  # drawn above a coin
    reads_keyboard = False
    start: tuple[int, int] = (0, 0)

    def __init__(self, position: tuple[int, int] | None = None):
        self.position: tuple[int, int] = (position[0], position[1]) if position is not None else self.start
        self._plan: Any = _UNPLANNED

    def choose(self, game: Any) -> str | None:
        return None

    def plan(self, game: Any) -> None:
        self._plan = self.choose(game)

    def play_turn(self, game: Any) -> None:
        if self.reads_keyboard:
            return  # moved in handle_keystroke
        key, self._plan = self._plan, _UNPLANNED
        if key is _UNPLANNED:
            key = self.choose(game) if game.playing else None
        if key is not None:
            self.move(key, game)

    def move(self, key: str | None, game: Any) -> None:
        if not game.playing or key not in MOVES:
            return
        target = legal_moves(game, self.position).get(key)
        if target is not None:
            self.position = target
        settle(game, self)


class _Enemy(_Piece):
    name, character, color = ENEMY, "E", "red"
    start = (2, 2)


class _Player(_Piece):
    name, character, color = PLAYER, "@", "green"
    start = (10, 6)


class _Keyboard(_Piece):
    reads_keyboard = True

    def handle_keystroke(self, keystroke: Any, game: Any) -> None:
        self.move(keystroke.name, game)


class _Random:
    def choose(self, game: Any) -> str | None:
        return random.choice(KEYS)


class _PolicyDriven(_Piece):
    """Asks ``policy.get_action(game)`` for its key (a :class:`~retro_gamer.TrainedPolicy` or any object with it)."""

    def __init__(self, policy: Any, position: tuple[int, int] | None = None):
        super().__init__(position)
        self.policy = policy

    def choose(self, game: Any) -> str | None:
        return self.policy.get_action(game)


class EnemyAgent(_Keyboard, _Enemy):
    """The enemy, driven by the keyboard (or by the trainer's keystrokes)."""


class PlayerAgent(_Keyboard, _Player):
    """The player, driven by the keyboard (or by the trainer's keystrokes)."""


class RandomPlayer(_Random, _Player):
    """A stand-in player that wanders at random and never reads the keyboard."""


class RandomEnemy(_Random, _Enemy):
    """A stand-in enemy that wanders at random."""


class AIPlayer(_PolicyDriven, _Player):
    """The player driven by a policy (``get_action`` in ``play_turn``): ``AIPlayer(TrainedPolicy(...))``."""


class AIEnemy(_PolicyDriven, _Enemy):
    """The enemy driven by a policy."""


class _AskedWhenMoving:
    """Asks its policy for the key when it moves instead of at the end of the turn before: in :func:`parallel_env`
    the agents send their keys between turns, decided from the position the last turn ended in (the position a
    planned key is decided from too), so the rules and the order of moves are the same."""

    def plan(self, game: Any) -> None:
        """Nothing planned: :meth:`_Piece.play_turn` then asks :meth:`_Piece.choose` as the piece moves."""


class _ParallelPlayer(_AskedWhenMoving, AIPlayer):
    """The player of :func:`parallel_env`: presses the key its agent sent this turn."""


class _ParallelEnemy(_AskedWhenMoving, AIEnemy):
    """The enemy of :func:`parallel_env`: presses the key its agent sent this turn."""


class Coin:
    character, color = "$", "yellow"

    def __init__(self, number: int, position: tuple[int, int] = (0, 0)):
        self.name = f"coin {number}"
        self.position = position


class Wall:
    character, color = "#", "white"

    def __init__(self, position: tuple[int, int]):
        self.position = position


def settle(game: Any, mover: Any) -> None:
    """After a move: a catch ends the game; the player on a coin collects it."""
    enemy, player = game.agents_by_name.get(ENEMY), game.agents_by_name.get(PLAYER)
    if enemy is None or player is None:
        return
    state = game.state
    if enemy.position == player.position:
        for key, value in (("caught", 1), ("enemy_reward", CATCH), ("player_reward", CAUGHT)):
            if key in state:
                state[key] += value
        game.end()
        return
    arena = _arena(game)
    if mover is player and arena is not None:
        for coin in arena.coins:
            if coin.position == player.position:
                state["coins"] += 1
                state["player_reward"] += COIN
                if "enemy_reward" in state:
                    state["enemy_reward"] -= COIN
                if state["coins"] >= COINS_TO_WIN:
                    game.end()
                    return
                arena.place_coin(game, coin)


def out_of_time(game: Any) -> bool:
    """Whether the game has played its turn limit (the arena's, :data:`TURN_LIMIT` without one)."""
    arena = _arena(game) if hasattr(game, "agents_by_name") else None
    return game.state.get("turn", 0) >= (arena.turn_limit if arena is not None else TURN_LIMIT)


def outcome(game: Any) -> dict[str, str]:
    """Each side's result of a finished game, ``{"player": "win", "enemy": "loss"}`` and so on: the player
    wins by :data:`COINS_TO_WIN` coins, the enemy by a catch or when the turn limit comes first; a game
    someone stopped before either is a draw. The one definition of winning: the tournament judges by it."""
    state = game.state
    if state.get("caught", 0):
        return {PLAYER: LOSS, ENEMY: WIN}
    if state.get("coins", 0) >= COINS_TO_WIN:
        return {PLAYER: WIN, ENEMY: LOSS}
    if out_of_time(game):
        return {PLAYER: LOSS, ENEMY: WIN}
    return {PLAYER: DRAW, ENEMY: DRAW}


# -- the referee ----------------------------------------------------------------------------------


class Arena:
    """Invisible and last in the agent list: walls, coins and the end-of-turn bookkeeping.

    At the end of each turn: the turn limit, the per-turn rewards, the observed features, and the
    next key of every policy-driven piece. :meth:`setup` does the same for turn 0.
    """

    name = "arena"
    display = False

    def __init__(self, layout: tuple[str, ...] = LAYOUT, turn_limit: int = TURN_LIMIT, coins: int = COINS):
        self.walls = frozenset((x, y) for y, row in enumerate(layout) for x, c in enumerate(row) if c == "#")
        self.board_size = (len(layout[0]), len(layout))
        self.table = _distances(self.board_size, self.walls)
        self.free = sorted(self.table)
        self.turn_limit = turn_limit
        self.coins = [Coin(i + 1) for i in range(coins)]
        self.pieces: list[_Piece] = []

    def agents(self) -> list[Any]:
        return [*self.coins, *(Wall(p) for p in sorted(self.walls)), self]

    def setup(self, game: Any, player: _Piece, enemy: _Piece) -> None:
        """Random starts, coins placed, features written, first moves planned."""
        self.pieces = [player, enemy]
        player.position = random.choice(self.free)
        far = [c for c in self.free if self.table[player.position][c] >= START_GAP]
        enemy.position = random.choice(far or self.free)
        for coin in self.coins:
            self.place_coin(game, coin)
        self._gap, self._coin_gap = self._measure(player, enemy)
        self._observe(game, player, enemy)
        self._plan(game)

    def place_coin(self, game: Any, coin: Coin) -> None:
        player, enemy = self.pieces
        taken = {player.position, enemy.position} | {c.position for c in self.coins if c is not coin}
        spots = [c for c in self.free if c not in taken and self.table[player.position][c] >= COIN_GAP]
        coin.position = random.choice(spots or [c for c in self.free if c not in taken])

    def nearest_coin(self, player: _Piece) -> Coin:
        row = self.table[player.position]
        return min(self.coins, key=lambda c: row.get(c.position, 10 * GAP_SCALE))

    def _measure(self, player: _Piece, enemy: _Piece) -> tuple[int, int]:
        row = self.table[player.position]
        return row[enemy.position], row[self.nearest_coin(player).position]

    def _observe(self, game: Any, player: _Piece, enemy: _Piece) -> None:
        (px, py), (ex, ey) = player.position, enemy.position
        (cx, cy), (width, height) = self.nearest_coin(player).position, self.board_size
        state = game.state
        state["gap_dx"], state["gap_dy"] = (px - ex) / width, (py - ey) / height
        state["gap"] = self._gap / GAP_SCALE
        state["coin_dx"], state["coin_dy"] = (cx - px) / width, (cy - py) / height
        state["progress"] = state["coins"] / COINS_TO_WIN
        state["clock"] = state["turn"] / self.turn_limit

    def _plan(self, game: Any) -> None:
        for piece in self.pieces:
            if not piece.reads_keyboard:
                piece.plan(game)

    def play_turn(self, game: Any) -> None:
        if not game.playing:
            return
        player, enemy = self.pieces
        state = game.state
        state["turn"] += 1
        gap, coin_gap = self._measure(player, enemy)
        state["enemy_reward"] += ENEMY_STEP * (self._gap - gap)
        state["player_reward"] += COIN_STEP * (self._coin_gap - coin_gap)
        self._gap, self._coin_gap = gap, coin_gap
        self._observe(game, player, enemy)
        if state["turn"] >= self.turn_limit:
            state["player_reward"] += CAUGHT  # out of time: the enemy's win, paid as a catch
            state["enemy_reward"] += CATCH
            game.end()
        else:
            self._plan(game)


def _new_state() -> dict[str, Any]:
    return {
        "coins": 0,
        "caught": 0,
        "turn": 0,
        "player_reward": 0.0,
        "enemy_reward": 0.0,
        **dict.fromkeys(FEATURES, 0.0),
    }


def _build(player: _Piece, enemy: _Piece, turn_limit: int = TURN_LIMIT) -> Game:
    arena = Arena(turn_limit=turn_limit)
    game = Game(
        [player, enemy, *arena.agents()],
        _new_state(),
        board_size=arena.board_size,
        show_state=["coins", "turn"],
        framerate=8,
    )
    arena.setup(game, player, enemy)
    return game


# -- scripted baselines (round 0) -----------------------------------------------------------------


def _step_toward(game: Any, position: tuple[int, int], target: tuple[int, int], away: bool = False) -> str | None:
    moves = legal_moves(game, position)
    if not moves:
        return None
    sign = -1 if away else 1
    best = min(sign * path_distance(game, cell, target) for cell in moves.values())
    return random.choice([k for k, cell in moves.items() if sign * path_distance(game, cell, target) == best])


class RandomPolicy:
    """Presses a random arrow key (Python's global ``random``)."""

    def get_action(self, game: Any) -> str | None:
        return random.choice(KEYS)


class ChaserPolicy:
    """The round-0 enemy: a shortest-path step toward the player ``greed`` of the time, else a random key."""

    def __init__(self, greed: float = GREED):
        self.greed = greed

    def get_action(self, game: Any) -> str | None:
        if random.random() >= self.greed:
            return random.choice(KEYS)
        enemy, player = game.agents_by_name[ENEMY], game.agents_by_name[PLAYER]
        return _step_toward(game, enemy.position, player.position)


class CoinGrabberPolicy:
    """The round-0 player: toward the nearest coin, away from the enemy when it is within
    ``flee`` steps; ``greed`` of the time, else a random key."""

    def __init__(self, greed: float = GREED, flee: int = FLEE_GAP):
        self.greed, self.flee = greed, flee

    def get_action(self, game: Any) -> str | None:
        if random.random() >= self.greed:
            return random.choice(KEYS)
        enemy, player = game.agents_by_name[ENEMY], game.agents_by_name[PLAYER]
        if path_distance(game, player.position, enemy.position) <= self.flee:
            return _step_toward(game, player.position, enemy.position, away=True)
        arena = _arena(game)
        if arena is None:
            return random.choice(KEYS)
        return _step_toward(game, player.position, arena.nearest_coin(player).position)


# -- opponents ------------------------------------------------------------------------------------


def load_opponent(source: Any) -> Any:
    """A policy for ``source``: a run directory or model URI is loaded once per process (cached by
    its text), anything else (an object with ``get_action``) is used as it is."""
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if ":/" not in source:  # a run directory: one cache entry however it is spelled
            source = os.path.abspath(source)
        return _load_policy(source)
    if not callable(getattr(source, "get_action", None)):
        raise TypeError(
            f"an opponent is a run directory, a model URI or an object with get_action(game), not {source!r}"
        )
    return source


@functools.cache
def _load_policy(source: str) -> Any:
    from retro_gamer.errors import RetroGamerError
    from retro_gamer.policy import TrainedPolicy

    policy = TrainedPolicy(source)
    desc = policy.config.game
    problems = []
    if desc.board_size is not None and tuple(desc.board_size) != BOARD_SIZE:
        problems.append(f"its board is {tuple(desc.board_size)}, chase's is {BOARD_SIZE}")
    if desc.character_set is not None and not set(desc.character_set) <= set(CHARACTERS):
        problems.append(f"it knows the characters {desc.character_set}, chase draws {CHARACTERS}")
    missing = [k for k in desc.observe_state if k not in _new_state()]
    if missing:
        problems.append(f"it observes {missing}, which chase's game.state lacks")
    if problems:
        raise RetroGamerError(f"The policy '{source}' was not trained on chase: " + "; ".join(problems) + ".")
    if desc.rules != RULES:
        was = RULES_SUMMARY.get(desc.rules, f"version {desc.rules}")
        raise RetroGamerError(
            f"The policy '{source}' was trained on other rules of chase, so it would play the wrong game. It was "
            f"trained on {was}; chase is now {RULES_SUMMARY[RULES]}. Train it again under the current rules (for the "
            "adversarial pipeline: `dvc repro`)."
        )
    return policy


def _check_side(policy: Any, side: str) -> None:
    """Refuse an opponent trained for the wrong side (its reward is the other side's key)."""
    config = getattr(policy, "config", None)
    reward = getattr(getattr(config, "game", None), "reward", None)
    other = ENEMY if side == PLAYER else PLAYER
    if reward == f"{other}_reward":
        from retro_gamer.errors import RetroGamerError

        raise RetroGamerError(
            f"The policy '{getattr(policy, 'source', policy)}' was trained as the {other} (reward = {reward!r}) and cannot play the "
            f"{side}: give the {side}'s run as this opponent."
        )


def _scripted(side: str) -> Any:
    return ChaserPolicy() if side == ENEMY else CoinGrabberPolicy()


def _side_policy(side: str, source: Any) -> Any:
    """A loaded opponent that may play ``side``."""
    policy = load_opponent(source)
    _check_side(policy, side)
    return policy


@functools.cache
def _load_pool(path: str, side: str) -> Any:
    """An opponent pool file (``opponents.json``), loaded once per process and side so that its draws continue
    from game to game; its members are this side's scripted policy and trained runs."""
    from retro_gamer.adversarial.pool import OpponentPool

    return OpponentPool.from_file(
        Path(path), scripted=functools.partial(_scripted, side), load=functools.partial(_side_policy, side)
    )


def _ai(side: str, source: Any) -> _Piece:
    from retro_gamer.adversarial.pool import is_pool_file

    if source is None:
        policy = _scripted(side)
    elif is_pool_file(source):
        policy = _load_pool(os.path.abspath(os.fspath(source)), side)
    else:
        policy = _side_policy(side, source)
    return AIEnemy(policy) if side == ENEMY else AIPlayer(policy)


# -- the variants ---------------------------------------------------------------------------------


def create_enemy_training_game(opponent: Any = None, turn_limit: int = TURN_LIMIT) -> Game:
    """The enemy reads the keyboard; the player is :class:`CoinGrabberPolicy`, or ``opponent``'s policy."""
    return _build(_ai(PLAYER, opponent), EnemyAgent(), turn_limit)


def create_player_training_game(opponent: Any = None, turn_limit: int = TURN_LIMIT) -> Game:
    """The player reads the keyboard; the enemy is :class:`ChaserPolicy`, or ``opponent``'s policy.

    Also the human game: ``create_player_training_game(opponent="models:/chase-enemy@champion").play()``.
    """
    return _build(PlayerAgent(), _ai(ENEMY, opponent), turn_limit)


def create_match_game(player: Any = None, enemy: Any = None, turn_limit: int = TURN_LIMIT) -> Game:
    """Both sides AI: each a policy source, a policy object, or ``None`` for the round-0 script."""
    return _build(_ai(PLAYER, player), _ai(ENEMY, enemy), turn_limit)


def create_parallel_game(drivers: Mapping[str, HeldKey], turn_limit: int = TURN_LIMIT) -> Game:
    """Both sides pressing what their drivers hold when they move (``drivers[PLAYER]``, ``drivers[ENEMY]``): the game
    :func:`parallel_env` plays."""
    return _build(_ParallelPlayer(drivers[PLAYER]), _ParallelEnemy(drivers[ENEMY]), turn_limit)


def parallel_env(turn_limit: int = TURN_LIMIT, **kwargs: Any) -> ParallelGameEnv:
    """Chase as a PettingZoo ``ParallelEnv``, agents ``"player"`` and ``"enemy"``, made as PettingZoo's own
    environments are. Each agent sees and is paid what the side's training game gives it (conf/game/chase_player.yaml,
    chase_enemy.yaml: the adversarial pipeline's), so a policy trained by retro-gamer for a side reads the same
    numbers; every end of the game is decided by :func:`outcome` (the turn limit too: the enemy wins it) and
    terminates, and the last infos hold each side's outcome. ``kwargs``: ``observation``, ``render_mode``, ``base_dir`` of
    :class:`~retro_gamer.adapters.pettingzoo_env.ParallelGameEnv`. Needs the ``[pettingzoo]`` extra."""
    from retro_gamer.adapters.pettingzoo_env import ParallelGameEnv, Side

    # the descriptions' max_turns is the game's turn limit
    limit = () if turn_limit == TURN_LIMIT else (f"game.max_turns={turn_limit}",)
    return ParallelGameEnv(
        functools.partial(create_parallel_game, turn_limit=turn_limit),
        [Side(PLAYER, "chase_player", limit), Side(ENEMY, "chase_enemy", limit)],
        outcome,
        name=f"chase_v{RULES}",
        draw=DRAW,
        **kwargs,
    )


def create_game_vs(enemy: Any = None) -> Game:
    """A human (arrow keys) against ``enemy``: a run directory, model URI, policy, or the script."""
    return create_player_training_game(opponent=enemy)


if __name__ == "__main__":
    create_game_vs(sys.argv[1] if len(sys.argv) > 1 else None).play()
