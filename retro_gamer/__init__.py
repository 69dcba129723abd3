"""retro_gamer: train reinforcement-learning agents to play retro-games terminal games.

``TrainedPolicy`` and ``PolicyInput`` are imported lazily so ``import retro_gamer`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.5.0.dev0"
__all__ = ["PolicyInput", "TrainedPolicy", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("TrainedPolicy", "PolicyInput"):
        from retro_gamer import policy

        return getattr(policy, name)
    raise AttributeError(f"module 'retro_gamer' has no attribute {name!r}")
