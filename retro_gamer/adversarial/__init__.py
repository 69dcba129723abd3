"""The match protocol between trained sides: who plays whom (opponent pools: :mod:`~retro_gamer.adversarial.pool`);
how a match is played and judged by the game's outcome (:mod:`~retro_gamer.adversarial.matches`); and what the
results say, with their uncertainty (:mod:`~retro_gamer.adversarial.intervals`, :mod:`~retro_gamer.adversarial.ratings`,
:mod:`~retro_gamer.adversarial.verdicts`, :mod:`~retro_gamer.adversarial.heatmap`), all together in a round-robin
:mod:`~retro_gamer.adversarial.tournament`. The rules of a game live in the game."""
