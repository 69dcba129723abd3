"""What ``resume.pt`` holds, as dataclasses with one way in and one way out.

:class:`TrainingState` is everything a stopped run needs to continue exactly; :meth:`TrainingState.to_dict` is the
file's contents and :meth:`TrainingState.from_dict` reads them back, both by walking the same fields, so a field
added here is saved and restored together or not at all. The learner's part is a :class:`LearnerState`, stored
flat beside the rest. A policy checkpoint ``ep_NNNN.pt`` is the subset :data:`~retro_gamer.run.checkpoint.POLICY_KEYS`
of the same dictionary.

The file stays what it has been (format 1): the same keys, the episode history as float64 and int64 tensors, the
games' placement under ``second_process``. Files may lack keys that came later; their fields have defaults.
``checkpoint.load`` reads with ``weights_only=True``, so values are tensors, numbers, strings, lists and dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from retro_gamer.run.checkpoint import FORMAT


def _stored(
    *,
    key: str | None = None,
    save: Callable[[Any], Any] | None = None,
    load: Callable[[Any], Any] | None = None,
    part: type | None = None,
    **default: Any,
) -> Any:
    """A field's place in the file: under ``key`` (its own name by default), written by ``save`` and read by
    ``load`` (as it is by default); ``part``: a dataclass whose fields are stored flat beside this one's.
    ``default``/``default_factory``: what a file from before the key existed means."""
    return field(metadata={"key": key, "save": save, "load": load, "part": part}, **default)


def _flat(state: Any) -> dict[str, Any]:
    """The file's keys and values for ``state``'s fields."""
    out: dict[str, Any] = {}
    for f in fields(state):
        value, meta = getattr(state, f.name), f.metadata
        if meta.get("part"):
            out.update(_flat(value))
        else:
            out[meta.get("key") or f.name] = meta["save"](value) if meta.get("save") else value
    return out


def _values(cls: type, saved: dict[str, Any]) -> dict[str, Any]:
    """``cls``'s constructor arguments from the file's keys: the inverse of :func:`_flat`; a key the file lacks
    leaves its field's default."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        meta = f.metadata
        key = meta.get("key") or f.name
        if meta.get("part"):
            values[f.name] = meta["part"](**_values(meta["part"], saved))
        elif key in saved:
            values[f.name] = meta["load"](saved[key]) if meta.get("load") else saved[key]
    return values


def _history(dtype: torch.dtype) -> Any:
    """A list of numbers, kept as one tensor (``weights_only`` loads it fast, however long the run)."""
    return _stored(save=lambda values: torch.tensor(values, dtype=dtype), load=lambda tensor: tensor.tolist())


@dataclass
class LearnerState:
    """The learner's part: its latest weights (also the policy checkpoint's), the target network, the optimizer and
    the gradient steps taken."""

    weights: dict[str, torch.Tensor]
    target_weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    updates: int = _stored(load=int)


@dataclass
class TrainingState:
    """A run's training state at a checkpoint: see the module docstring."""

    # what the policy checkpoint carries too, beside the learner's weights and update count
    episode: int = _stored(load=int)  # completed episodes
    env_steps: int = _stored(load=int)
    mean_return: float | None = _stored()  # of the last checkpoint window
    wall_seconds: float = _stored(load=float)  # training time over every session
    config: dict[str, Any] = _stored()  # config.toml's contents
    observation: dict[str, Any] = _stored()  # the observation's sizes
    learner: LearnerState = _stored(part=LearnerState)
    # what only training needs
    returns: list[float] = _history(torch.float64)  # every episode's return
    lengths: list[int] = _history(torch.int64)
    learn_credit: float = _stored(load=float)  # fractional gradient steps owed
    learn_from: int = _stored(load=int)  # the env step learning starts at
    exploration: dict[str, Any] | None = _stored()  # the schedule sized to a time limit or set by a warm start
    python_random: Any = _stored()  # the games' draws
    numpy_random: Mapping[str, Any] = _stored()  # the trainer's action draws
    torch_random: torch.Tensor = _stored()
    cuda_random: list[torch.Tensor] = _stored()  # empty unless the run learned on CUDA
    replay: dict[str, Any] | None = _stored()  # the replay memory's manifest; None: not kept
    acting_weights: dict[str, torch.Tensor] | None = _stored(default=None)  # None: the learner's weights
    game_process: bool | None = _stored(key="second_process", default=None)  # None: not recorded
    learner_process: bool = _stored(default=False)

    def to_dict(self) -> dict[str, Any]:
        """``resume.pt``'s contents."""
        return {"format": FORMAT, **_flat(self)}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainingState:
        """The state a ``resume.pt`` holds (as :func:`~retro_gamer.run.checkpoint.load` returns it)."""
        return cls(**_values(cls, saved))
