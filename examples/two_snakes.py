"""A human snake and an AI snake in one game; the AI snake's play_turn asks a TrainedPolicy.

    python examples/two_snakes.py        # needs a trained run in runs/snake/

This is the two-snake example from "Integrating a Trained Model", changed where retro-games 2.5
requires it (docs/integrating-a-trained-model.rst explains each change):

1. Agent names must be unique, and both heads were "Snake head"; both snakes' first body
   segments would also be "Snake body segment 1". The AI snake is named "AI snake" and starts
   with a segment numbered 1000, so its segments never collide with the human's.
2. SnakeHead.play_turn updates game.state["reward"], ["energy"], ["apple_dx"] and ["apple_dy"],
   so the state must start with those keys, not just "score".
3. The model was trained looking from its own head: the policy is told which agent it plays
   (agent="AI snake", for the egocentric crop) and the AI snake sets apple_dx/apple_dy relative
   to itself before asking for an action.
"""

from retro.examples.snake import Apple, SnakeBodySegment, SnakeHead
from retro.game import Game

from retro_gamer import TrainedPolicy

_ai = TrainedPolicy("runs/snake/", agent="AI snake")


class AISnake(SnakeHead):
    name = "AI snake"

    def handle_keystroke(self, k, game):
        pass  # ignore keyboard

    def play_turn(self, game):
        bw, bh = game.board_size
        (hx, hy), (ax, ay) = self.position, game.get_agent_by_name("Apple").position
        game.state["apple_dx"], game.state["apple_dy"] = (ax - hx) / bw, (ay - hy) / bh
        key = _ai.get_action(game)
        if key == "KEY_RIGHT":
            self.direction, self.character = (1, 0), ">"
        elif key == "KEY_LEFT":
            self.direction, self.character = (-1, 0), "<"
        elif key == "KEY_UP":
            self.direction, self.character = (0, -1), "^"
        elif key == "KEY_DOWN":
            self.direction, self.character = (0, 1), "v"
        super().play_turn(game)


def create_game():
    human_snake = SnakeHead()
    human_snake.position = (4, 4)
    ai_snake = AISnake()
    ai_snake.position = (16, 8)
    ai_tail = SnakeBodySegment(1000, (16, 7))  # segment ids from 1000: names stay unique
    ai_snake.next_segment = ai_tail
    apple = Apple()
    state = {"score": 0, "reward": 0, "energy": 150, "apple_dx": 0.0, "apple_dy": 0.0}
    game = Game([human_snake, ai_snake, ai_tail, apple], state, board_size=(32, 16))
    apple.relocate(game)
    return game


if __name__ == "__main__":
    create_game().play()
