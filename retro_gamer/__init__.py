"""retro_gamer: train reinforcement-learning agents to play retro-games terminal games.

``TrainedPolicy`` and ``PolicyInput`` are imported lazily so ``import retro_gamer`` stays cheap. Where Gymnasium is
installed, importing the package registers its games' Gymnasium ids (``retro_gamer/Snake-v0``, …; see
:mod:`retro_gamer.adapters.registration`), which imports Gymnasium and nothing of the environments themselves.
"""

from __future__ import annotations

from typing import Any

from retro_gamer.adapters.registration import register_if_installed

__version__ = "0.5.0.dev0"
__all__ = ["PolicyInput", "TrainedPolicy", "__version__"]

register_if_installed()


def __getattr__(name: str) -> Any:
    if name in ("TrainedPolicy", "PolicyInput"):
        from retro_gamer import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'retro_gamer' has no attribute {name!r}")
