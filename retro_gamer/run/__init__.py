"""Run directories: preparing and training one (:mod:`~retro_gamer.run.directory`), its checkpoints, resume state and
compatibility rules (:mod:`~retro_gamer.run.checkpoint`), one writer at a time (:mod:`~retro_gamer.run.lock`), and
continuing another run's training state (:mod:`~retro_gamer.run.warm_start`)."""
