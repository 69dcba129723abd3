"""Gems: a plain game with walls and several characters, described only by its keys and its reward.

The player ``@`` (arrow keys) collects gems ``$`` (+1, a new one appears) on a 30x20 board with
wall segments ``#``, while three ghosts ``G`` wander at random; touching a ghost costs 5 and ends
the game, and a game lasts at most 300 turns. ``conf/game/gems.yaml`` gives no window, no network
and no character set: :mod:`retro_gamer.config.autoconfig` chooses them (``retro-gamer create --game gems``).
"""

from __future__ import annotations

import random
from typing import Any

from retro.game import Game

WIDTH, HEIGHT = 30, 20
WALLS = (
    [(x, 5) for x in range(4, 12)]
    + [(x, 14) for x in range(18, 26)]
    + [(8, y) for y in range(9, 17)]
    + [(21, y) for y in range(2, 10)]
    + [(14, y) for y in range(7, 13)]
)
GEMS, GHOSTS, TURNS = 4, 3, 300
MOVES = {"KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_LEFT": (-1, 0), "KEY_DOWN": (0, 1)}


def _free(game: Any, position: tuple[int, int]) -> bool:
    return game.on_board(position) and position not in game.walls


class Player:
    name, character = "player", "@"

    def __init__(self, position: tuple[int, int]):
        self.position = position

    def handle_keystroke(self, keystroke: Any, game: Any) -> None:
        dx, dy = MOVES.get(keystroke.name, (0, 0))
        target = (self.position[0] + dx, self.position[1] + dy)
        if _free(game, target):
            self.position = target
        for gem in game.gems:
            if gem.position == self.position:
                game.state["score"] += 1
                gem.position = _empty_cell(game)


class Ghost:
    character = "G"

    def __init__(self, position: tuple[int, int]):
        self.position = position

    def play_turn(self, game: Any) -> None:
        player = game.agents_by_name["player"]
        if random.random() < 0.5:
            dx, dy = random.choice(list(MOVES.values()))
            target = (self.position[0] + dx, self.position[1] + dy)
            if _free(game, target):
                self.position = target
        if self.position == player.position:
            game.state["score"] -= 5
            game.end()


class Gem:
    character = "$"

    def __init__(self, position: tuple[int, int]):
        self.position = position


class Wall:
    character = "#"

    def __init__(self, position: tuple[int, int]):
        self.position = position


class Clock:
    """Invisible: ends the game after TURNS turns."""

    display = False

    def play_turn(self, game: Any) -> None:
        if game.turn_number >= TURNS:
            game.end()


def _empty_cell(game: Any) -> tuple[int, int]:
    taken = {a.position for a in game.agents if getattr(a, "display", True)}
    while True:
        cell = (random.randrange(WIDTH), random.randrange(HEIGHT))
        if cell not in taken and cell not in game.walls:
            return cell


def create_game() -> Game:
    cells = [(x, y) for x in range(WIDTH) for y in range(HEIGHT) if (x, y) not in set(WALLS)]
    spots = random.sample(cells, 1 + GEMS + GHOSTS)
    player = Player(spots[0])
    game = Game(
        [player, *(Ghost(p) for p in spots[1 + GEMS :]), *(Wall(p) for p in WALLS), Clock()],
        {"score": 0},
        board_size=(WIDTH, HEIGHT),
    )
    game.walls = frozenset(WALLS)
    game.gems = [Gem(p) for p in spots[1 : 1 + GEMS]]
    for gem in game.gems:
        game.add_agent(gem)
    return game


if __name__ == "__main__":
    create_game().play()
