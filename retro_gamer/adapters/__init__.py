"""retro-gamer's games for other reinforcement-learning libraries: any game retro-gamer loads as a Gymnasium
environment (:mod:`~retro_gamer.adapters.gymnasium_env`), registered with Gymnasium when ``retro_gamer`` is imported
(:mod:`~retro_gamer.adapters.registration`). The trainer never imports them: they sit beside it, on the same
observation code."""
