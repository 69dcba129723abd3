"""Hyperparameter search with Optuna's ask/tell API: a study shared by any number of workers, each trial an
ordinary composed run, every trial an MLflow run under the study's parent run (``retro-gamer tune``)."""
