"""The ``retro-gamer`` command (:mod:`~retro_gamer.cli.app`); ``python -m retro_gamer.train`` is the Hydra face."""
