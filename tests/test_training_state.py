"""resume.pt as a dataclass (retro_gamer.run.training_state): every field comes back from the file as it went in,
the file keeps its keys and dtypes (format 1), and files from before a key existed still read."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retro_gamer.run import checkpoint
from retro_gamer.run.training_state import LearnerState, TrainingState

# resume.pt's keys as the code before TrainingState wrote them
FORMAT_1_KEYS = {
    *checkpoint.POLICY_KEYS,
    "target_weights",
    "optimizer",
    "acting_weights",
    "returns",
    "lengths",
    "learn_credit",
    "learn_from",
    "exploration",
    "python_random",
    "second_process",
    "learner_process",
    "numpy_random",
    "torch_random",
    "cuda_random",
    "replay",
}


def weights(seed: int) -> dict[str, torch.Tensor]:
    return {
        "layer.weight": torch.randn(3, 2, generator=torch.Generator().manual_seed(seed)),
        "layer.bias": torch.ones(3),
    }


def example() -> TrainingState:
    """A state whose every field differs from its default and from every other field."""
    net = torch.nn.Linear(2, 3)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return TrainingState(
        episode=13,
        env_steps=401,
        mean_return=-2.5,
        wall_seconds=12.25,
        config={"training": {"seed": 0}},
        observation={"board_shape": [11, 11], "n_classes": 7, "extras_size": 2, "n_actions": 4},
        learner=LearnerState(
            weights=weights(1), target_weights=weights(2), optimizer=optimizer.state_dict(), updates=84
        ),
        returns=[1.5, -3.0, 0.25],
        lengths=[20, 31, 7],
        learn_credit=0.75,
        learn_from=64,
        exploration={"decided_at_env_step": 100, "from_epsilon": 0.5, "epsilon_end_at_env_step": 300},
        python_random=random.Random(3).getstate(),
        numpy_random=np.random.default_rng(4).bit_generator.state,
        torch_random=torch.Generator().manual_seed(5).get_state(),
        cuda_random=[torch.Generator().manual_seed(6).get_state()],
        replay={"size": 401, "cursor": 401, "capacity": 500, "chunks": ["chunk_000_abc.pt"]},
        acting_weights=weights(3),
        game_process=True,
        learner_process=True,
    )


def same(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def through_the_file(state: TrainingState, tmp_path: Path) -> TrainingState:
    checkpoint.save(tmp_path / checkpoint.RESUME_FILE, state.to_dict())
    return TrainingState.from_dict(checkpoint.load(tmp_path / checkpoint.RESUME_FILE))  # weights_only=True


def test_every_field_round_trips_through_resume_pt(tmp_path: Path):
    state = example()
    back = through_the_file(state, tmp_path)
    for part, was in ((back, state), (back.learner, state.learner)):
        for f in dataclasses.fields(was):
            assert same(getattr(part, f.name), getattr(was, f.name)), f.name
    defaults = {f.name for f in dataclasses.fields(TrainingState) if f.default is not dataclasses.MISSING}
    assert all(getattr(state, name) != getattr(TrainingState, name) for name in defaults)  # the example sets them all


def test_the_file_keeps_its_format_1_keys_and_dtypes():
    saved = example().to_dict()
    assert set(saved) == FORMAT_1_KEYS | {"format"} and saved["format"] == checkpoint.FORMAT == 1
    assert saved["returns"].dtype == torch.float64 and saved["lengths"].dtype == torch.int64
    assert saved["second_process"] is True and saved["updates"] == 84 and saved["weights"] is not None
    assert all(type(saved[key]) is int for key in ("episode", "env_steps", "updates", "learn_from"))


def test_a_file_from_before_the_later_keys_reads_with_their_defaults():
    saved = example().to_dict()
    for key in ("acting_weights", "second_process", "learner_process"):
        del saved[key]
    state = TrainingState.from_dict(saved)
    assert (state.acting_weights, state.game_process, state.learner_process) == (None, None, False)
