"""Where a run's work happens: the one placement decision (device, learner process, games' process:
:mod:`~retro_gamer.runtime.placement`) and the helper processes that carry it out
(:mod:`~retro_gamer.runtime.child_process`)."""
