"""A chase on an open board: an enemy ``E`` tries to catch the player ``@``.

The characters the integration guide uses: each side comes keyboard-driven (for training that
side), random (a stand-in opponent) or driven by a :class:`~retro_gamer.TrainedPolicy`
(adversarial alternation). Rewards live in whichever of ``game.state['enemy_reward']`` (+1 for a
catch) and ``game.state['player_reward']`` (+0.01 a turn survived, -1 when caught) the game has.

    retro-gamer create --game retro_gamer.examples.chase:create_enemy_training_game --output runs/enemy
"""

from __future__ import annotations

import random
from typing import Any

from retro.game import Game

MOVES = {"KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_LEFT": (-1, 0), "KEY_DOWN": (0, 1)}


class _Piece:
    """Moves one cell per key; the game ends when the enemy and the player meet.

    Keyboard-driven pieces move in ``handle_keystroke``; the others pick a key in ``choose``.
    """

    def choose(self, game: Any) -> str | None:
        return None

    def play_turn(self, game: Any) -> None:
        key = self.choose(game)
        if key is not None:
            self.move(key, game)
        self.after_turn(game)

    def after_turn(self, game: Any) -> None:
        pass

    def move(self, key: str | None, game: Any) -> None:
        dx, dy = MOVES.get(key, (0, 0))
        x, y = self.position
        if game.on_board((x + dx, y + dy)):
            self.position = (x + dx, y + dy)
        enemy, player = game.get_agent_by_name("enemy"), game.get_agent_by_name("player")
        if enemy.position == player.position:
            if "enemy_reward" in game.state:
                game.state["enemy_reward"] += 1
            if "player_reward" in game.state:
                game.state["player_reward"] -= 1
            game.end()


class _Enemy(_Piece):
    name, character, color = "enemy", "E", "red"

    def __init__(self, position: tuple[int, int] = (2, 2)):
        self.position = position


class _Player(_Piece):
    name, character, color = "player", "@", "green"

    def __init__(self, position: tuple[int, int] = (10, 6)):
        self.position = position

    def after_turn(self, game: Any) -> None:
        if "player_reward" in game.state and game.playing:
            game.state["player_reward"] += 0.01  # surviving is worth a little every turn


class _Keyboard:
    def handle_keystroke(self, keystroke: Any, game: Any) -> None:
        self.move(keystroke.name, game)


class _Random:
    def choose(self, game: Any) -> str | None:
        return random.choice(list(MOVES))


class _PolicyDriven:
    def __init__(self, policy: Any, *position: tuple[int, int]):
        super().__init__(*position)
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
    """The player driven by a trained policy (``get_action`` in ``play_turn``)."""


class AIEnemy(_PolicyDriven, _Enemy):
    """The enemy driven by a trained policy."""


def create_enemy_training_game(opponent: Any = None) -> Game:
    """The enemy is keyboard-driven; the player is random, or ``opponent``'s policy when given."""
    player = AIPlayer(opponent) if opponent is not None else RandomPlayer()
    return Game([EnemyAgent(), player], {"enemy_reward": 0}, board_size=(32, 16))


def create_player_training_game(opponent: Any = None) -> Game:
    """The player is keyboard-driven; the enemy is random, or ``opponent``'s policy when given."""
    enemy = AIEnemy(opponent) if opponent is not None else RandomEnemy()
    return Game([PlayerAgent(), enemy], {"player_reward": 0.0}, board_size=(32, 16))
