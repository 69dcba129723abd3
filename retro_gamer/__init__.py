"""retro_gamer: train reinforcement-learning agents to play retro-games terminal games."""

__version__ = "0.5.0.dev0"
