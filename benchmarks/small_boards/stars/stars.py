"""Stars: a newcomer's first game on a 20x10 board. Collect the star ('*'; a new one appears at random);
a comet ('o') bounces diagonally off the walls and ends the game when it hits you. The score counts stars,
and nothing else: no hint of where the star is."""

from random import randrange

from retro.game import Game

WIDTH, HEIGHT = 20, 10
MOVES = {"KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_LEFT": (-1, 0), "KEY_DOWN": (0, 1)}


def free_cell(game: Game) -> tuple[int, int]:
    while True:
        position = (randrange(WIDTH), randrange(HEIGHT))
        if game.is_empty(position):
            return position


class Player:
    name = "player"
    character = "@"

    def __init__(self) -> None:
        self.position = (WIDTH // 2, HEIGHT // 2)

    def handle_keystroke(self, keystroke, game: Game) -> None:
        dx, dy = MOVES.get(keystroke.name, (0, 0))
        position = (self.position[0] + dx, self.position[1] + dy)
        if game.on_board(position):
            self.position = position


class Star:
    name = "star"
    character = "*"

    def __init__(self, position: tuple[int, int]) -> None:
        self.position = position

    def play_turn(self, game: Game) -> None:
        if game.get_agent_by_name("player").position == self.position:
            game.state["stars"] += 1
            self.position = free_cell(game)


class Comet:
    name = "comet"
    character = "o"

    def __init__(self) -> None:
        self.position = (1, 1)
        self.velocity = (1, 1)

    def play_turn(self, game: Game) -> None:
        (x, y), (dx, dy) = self.position, self.velocity
        if not 0 <= x + dx < WIDTH:
            dx = -dx
        if not 0 <= y + dy < HEIGHT:
            dy = -dy
        self.velocity, self.position = (dx, dy), (x + dx, y + dy)
        if game.get_agent_by_name("player").position == self.position:
            game.end()


def create_game() -> Game:
    game = Game([Player(), Comet()], {"stars": 0}, board_size=(WIDTH, HEIGHT))
    game.add_agent(Star(free_cell(game)))
    return game
