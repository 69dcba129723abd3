"""Run directories: preparing and training one (:mod:`~retro_gamer.run.directory`), its checkpoints, resume state and
compatibility rules (:mod:`~retro_gamer.run.checkpoint`), what resume.pt holds
(:mod:`~retro_gamer.run.training_state`), one writer at a time (:mod:`~retro_gamer.run.lock`), and
continuing another run's training state (:mod:`~retro_gamer.run.warm_start`)."""
