"""Where models logged by retro-gamer before 0.5 find their class: their MLflow code file says
``from retro_gamer.mlflow_model import PolicyModel``. New models name :mod:`retro_gamer.tracking.mlflow_model`."""

from retro_gamer.tracking.mlflow_model import PolicyModel

__all__ = ["PolicyModel"]
