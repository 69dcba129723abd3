"""Recording what was trained: the MLflow run as a training callback (:mod:`~retro_gamer.tracking.mlflow_run`), where
the store is (:mod:`~retro_gamer.tracking.store`), logged, registered and downloaded policy models
(:mod:`~retro_gamer.tracking.mlflow_model`), episode replays (:mod:`~retro_gamer.tracking.recording`) and learning
curves (:mod:`~retro_gamer.tracking.plots`)."""
