"""Vault: a 20x12 maze. Coins ('$') appear at random free cells, three at a time; a guard ('G') wanders the
corridors, every other step toward you, and ends the game when it reaches you. The score counts coins, and
nothing else."""

from random import choice, random, randrange

from retro.game import Game

WIDTH, HEIGHT = 20, 12
MOVES = {"KEY_RIGHT": (1, 0), "KEY_UP": (0, -1), "KEY_LEFT": (-1, 0), "KEY_DOWN": (0, 1)}
MAZE = [
    "....................",
    ".##.####.##.####.##.",
    ".#..................",
    ".#.###.#.##.#.###.#.",
    "...#...#....#...#...",
    ".#.#.###.##.###.#.#.",
    ".#..................",
    ".###.#.######.#.###.",
    ".....#........#.....",
    ".##.####.##.####.##.",
    "....................",
    "....................",
]


def free_cell(game: Game) -> tuple[int, int]:
    while True:
        position = (randrange(WIDTH), randrange(HEIGHT))
        if game.is_empty(position):
            return position


class Wall:
    character = "#"

    def __init__(self, position: tuple[int, int]) -> None:
        self.position = position


class Player:
    name = "player"
    character = "@"

    def __init__(self) -> None:
        self.position = (0, HEIGHT - 1)

    def handle_keystroke(self, keystroke, game: Game) -> None:
        dx, dy = MOVES.get(keystroke.name, (0, 0))
        position = (self.position[0] + dx, self.position[1] + dy)
        if game.on_board(position) and MAZE[position[1]][position[0]] != "#":
            self.position = position


class Coin:
    character = "$"

    def __init__(self, position: tuple[int, int]) -> None:
        self.position = position

    def play_turn(self, game: Game) -> None:
        if game.get_agent_by_name("player").position == self.position:
            game.state["coins"] += 1
            self.position = free_cell(game)


class Guard:
    name = "guard"
    character = "G"

    def __init__(self) -> None:
        self.position = (WIDTH - 1, 0)

    def play_turn(self, game: Game) -> None:
        x, y = self.position
        steps = [
            (x + dx, y + dy)
            for dx, dy in MOVES.values()
            if game.on_board((x + dx, y + dy)) and MAZE[y + dy][x + dx] != "#"
        ]
        player = game.get_agent_by_name("player").position
        if random() < 0.5:
            closest = min(abs(px - player[0]) + abs(py - player[1]) for px, py in steps)
            steps = [(px, py) for px, py in steps if abs(px - player[0]) + abs(py - player[1]) == closest]
        self.position = choice(steps)
        if player == self.position:
            game.end()


def create_game() -> Game:
    walls = [Wall((x, y)) for y, row in enumerate(MAZE) for x, cell in enumerate(row) if cell == "#"]
    game = Game([*walls, Player(), Guard()], {"coins": 0}, board_size=(WIDTH, HEIGHT))
    for _ in range(3):
        game.add_agent(Coin(free_cell(game)))
    return game
