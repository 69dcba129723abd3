"""Deep Q-learning: the Q-networks (:mod:`~retro_gamer.dqn.network`), the replay memory
(:mod:`~retro_gamer.dqn.replay_memory`), the learner that takes gradient steps (:mod:`~retro_gamer.dqn.learner`),
the loop that plays, stores and learns (:mod:`~retro_gamer.dqn.trainer`), its callback seam and run logs
(:mod:`~retro_gamer.dqn.callbacks`), and greedy evaluation (:mod:`~retro_gamer.dqn.evaluate`). Nothing here imports
MLflow: tracking plugs in as a callback."""
