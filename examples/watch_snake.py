"""Watch a trained snake play: the model replaces the keyboard (PolicyInput).

python examples/watch_snake.py [RUN_DIR]        # default runs/snake/
"""

import sys

from retro.examples.snake import create_game

from retro_gamer import PolicyInput, TrainedPolicy

ai = TrainedPolicy(sys.argv[1] if len(sys.argv) > 1 else "runs/snake/")
game = create_game()
game.play(input_source=PolicyInput(ai, game))
