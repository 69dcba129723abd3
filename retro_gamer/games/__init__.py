"""Game descriptions (what to train on), loading the game code they point at, and showing the game's own frames
when that code fails (:mod:`~retro_gamer.games.faults`)."""

from retro_gamer.games.description import DISCOVERED_KEYS, Crop, GameDescription, check_against_game, parse_description
from retro_gamer.games.loading import (
    description_from_pyproject,
    find_pyproject,
    game_factory,
    is_model_uri,
    load_factory,
    portable,
    rebase,
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
