"""Game descriptions (what to train on) and loading the game code they point at."""

from retro_gamer.games.description import DISCOVERED_KEYS, Crop, GameDescription, check_against_game, parse_description
from retro_gamer.games.loading import (
    description_from_pyproject, find_pyproject, game_factory, is_model_uri, load_factory, portable, rebase,
)

__all__ = [
    "DISCOVERED_KEYS",
    "Crop",
    "GameDescription",
    "check_against_game",
    "description_from_pyproject",
    "find_pyproject",
    "game_factory",
    "is_model_uri",
    "load_factory",
    "parse_description",
    "portable",
    "rebase",
]
