"""A game as an environment: one real ``retro.game.Game`` driven headless (:mod:`~retro_gamer.env.environment`),
turned into numbers (:mod:`~retro_gamer.env.observation`), and many games stepped together, here or in a second
process (:mod:`~retro_gamer.env.game_batch`)."""
