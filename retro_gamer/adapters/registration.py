"""Gymnasium ids for retro-gamer's games, registered by ``import retro_gamer`` when Gymnasium is installed.

Gymnasium 1.x has no plugin entry points, so the ids are registered by the package itself, with entry-point strings:
registering imports Gymnasium but neither the environment's module nor torch, Hydra or the game
(benchmarks/import_time.py measures what it adds to ``import retro_gamer``). A core install without Gymnasium
registers nothing and imports as before.
"""

from __future__ import annotations

ENTRY_POINT = "retro_gamer.adapters.gymnasium_env:RetroGameEnv"
NAMESPACE = "retro_gamer"
# Each shipped Hydra game (conf/game/NAME.yaml) under its id; tests/test_gymnasium.py checks the two lists agree.
GAMES = {
    "Snake-v0": "snake",
    "SnakePlain-v0": "snake_plain",
    "Gems-v0": "gems",
    "ChasePlayer-v0": "chase_player",
    "ChaseEnemy-v0": "chase_enemy",
}
ANY_GAME = "Game-v0"  # gymnasium.make("retro_gamer/Game-v0", game=SPEC): whatever `retro-gamer create --game` takes


def register_all() -> None:
    """Register every id with Gymnasium, once: registering an id again would only warn, so a second call returns."""
    import gymnasium

    if f"{NAMESPACE}/{ANY_GAME}" in gymnasium.registry:
        return
    for env_id, game in GAMES.items():
        gymnasium.register(f"{NAMESPACE}/{env_id}", entry_point=ENTRY_POINT, kwargs={"game": game})
    gymnasium.register(f"{NAMESPACE}/{ANY_GAME}", entry_point=ENTRY_POINT)


def register_if_installed() -> None:
    """:func:`register_all` when Gymnasium can be imported; nothing (and no import) otherwise."""
    from retro_gamer.extras import installed

    if installed("gymnasium"):
        register_all()
