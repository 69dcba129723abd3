"""Play the chase player yourself (arrow keys) against the adversarial pipeline's champion enemy.

    python examples/play_vs_champion.py                              # models:/chase-enemy@champion
    python examples/play_vs_champion.py runs/adversarial/enemy_r3    # or any enemy run directory

Collect 3 coins ($) within 200 turns without E catching you. The enemy model is loaded once, then
asked for a move every turn (``get_action`` inside the game's own turn).
"""

import sys

from retro_gamer.examples.chase import create_game_vs

CHAMPION = "models:/chase-enemy@champion"


def create_game(enemy: str = CHAMPION):
    return create_game_vs(enemy=enemy)


if __name__ == "__main__":
    create_game(sys.argv[1] if len(sys.argv) > 1 else CHAMPION).play()
