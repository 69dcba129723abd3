"""A run's configuration: the typed schema and the ``config.toml`` codec (:mod:`~retro_gamer.config.schema`), the
choices made once from the game itself (:mod:`~retro_gamer.config.autoconfig`), and Hydra composition of a game
argument and overrides (:mod:`~retro_gamer.config.compose`)."""
