"""The learning maths, checked against numbers worked out by hand: n-step returns (retro_gamer.dqn.n_step) for
episodes that end, are truncated, are stopped early or run long, with n = 1 and n = 3; and Double DQN's target
(retro_gamer.dqn.learner.double_dqn_target). γ = 0.5 throughout, so every number is exact in binary."""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np
import pytest
import torch

from retro_gamer.dqn.learner import double_dqn_target
from retro_gamer.dqn.n_step import PendingStep, n_step_transitions

GAMMA = 0.5
End = Literal["terminated", "truncated", "stopped"]
Row = tuple[int, float, float, int]  # (step, n-step return, discount, observation it bootstraps from)


def observation(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Observation t (before step t; t = length is the last), told apart by its values."""
    return np.full(2, t, np.float32), np.full(1, -t, np.float32)


def play(rewards: list[float], n: int, end: End) -> list[Row]:
    """The transitions of one game, made as the trainer makes them: each step appended, then the transitions
    due handed the observation after it. A game that is ``terminated`` or ``truncated`` flushes at its last
    step; one ``stopped`` (Ctrl+C, time limit) has its last step recorded as any other, then a flush with the
    observation it stopped at."""
    pending: deque[PendingStep] = deque()
    rows: list[Row] = []

    def collect(next_t: int, ended: bool, flush: bool) -> None:
        for board, extras, action, n_step_return, discount in n_step_transitions(pending, GAMMA, n, ended, flush):
            step = int(board[0])
            assert (extras[0], action) == (-step, 100 + step)  # the step's own observation and action
            rows.append((step, n_step_return, discount, next_t))

    for t, reward in enumerate(rewards):
        board, extras = observation(t)
        pending.append((board, extras, 100 + t, reward))
        last = t == len(rewards) - 1 and end != "stopped"
        collect(t + 1, ended=last and end == "terminated", flush=last)
    if end == "stopped":
        collect(len(rewards), ended=False, flush=True)
    assert not pending  # every step became a transition
    return rows


@pytest.mark.parametrize(
    ("rewards", "n", "end", "expected"),
    [
        # (a) a game that really ends before the window fills: everything flushed, nothing to bootstrap from
        pytest.param([3, -2], 3, "terminated", [(0, 3 - 1, 0, 2), (1, -2, 0, 2)], id="terminated-early-n3"),
        pytest.param([3, -2], 1, "terminated", [(0, 3, 0.5, 1), (1, -2, 0, 2)], id="terminated-early-n1"),
        # (b) cut short at max_turns: the same returns, bootstrapped from the last observation by γ^steps left
        pytest.param([3, -2], 3, "truncated", [(0, 3 - 1, 0.25, 2), (1, -2, 0.5, 2)], id="truncated-n3"),
        pytest.param([3, -2], 1, "truncated", [(0, 3, 0.5, 1), (1, -2, 0.5, 2)], id="truncated-n1"),
        # (c) stopped early: full windows as they come, then the rest flushed as a truncation
        pytest.param(
            [1, 0, 2, -1],
            3,
            "stopped",
            [(0, 1 + 0 + 0.5, 0.125, 3), (1, 0 + 1 - 0.25, 0.125, 4), (2, 2 - 0.5, 0.25, 4), (3, -1, 0.5, 4)],
            id="stopped-n3",
        ),
        pytest.param([3, -2], 3, "stopped", [(0, 3 - 1, 0.25, 2), (1, -2, 0.5, 2)], id="stopped-before-full-n3"),
        pytest.param(
            [1, 0, 2, -1],
            1,
            "stopped",
            [(0, 1, 0.5, 1), (1, 0, 0.5, 2), (2, 2, 0.5, 3), (3, -1, 0.5, 4)],
            id="stopped-n1",  # nothing left to flush
        ),
        # (d) a long game: the window slides one step at a time, each transition bootstrapping n steps on
        pytest.param(
            [1, 0, 2, -1, 0, 4],
            3,
            "terminated",
            [
                (0, 1 + 0 + 0.5, 0.125, 3),
                (1, 0 + 1 - 0.25, 0.125, 4),
                (2, 2 - 0.5 + 0, 0.125, 5),
                (3, -1 + 0 + 1, 0, 6),
                (4, 0 + 2, 0, 6),
                (5, 4, 0, 6),
            ],
            id="long-terminated-n3",
        ),
        pytest.param(
            [1, 0, 2, -1, 0, 4],
            3,
            "truncated",
            [
                (0, 1 + 0 + 0.5, 0.125, 3),
                (1, 0 + 1 - 0.25, 0.125, 4),
                (2, 2 - 0.5 + 0, 0.125, 5),
                (3, -1 + 0 + 1, 0.125, 6),
                (4, 0 + 2, 0.25, 6),
                (5, 4, 0.5, 6),
            ],
            id="long-truncated-n3",
        ),
        pytest.param(
            [1, 0, 2, -1, 0, 4],
            1,
            "terminated",
            [(0, 1, 0.5, 1), (1, 0, 0.5, 2), (2, 2, 0.5, 3), (3, -1, 0.5, 4), (4, 0, 0.5, 5), (5, 4, 0, 6)],
            id="long-terminated-n1",
        ),
    ],
)
def test_n_step_transitions(rewards: list[float], n: int, end: End, expected: list[Row]):
    assert play(rewards, n, end) == expected


def test_a_window_short_of_n_waits_for_more_steps():
    pending: deque[PendingStep] = deque([(*observation(0), 100, 1.0), (*observation(1), 101, 2.0)])
    assert n_step_transitions(pending, GAMMA, 3, ended=False, flush=False) == []
    assert len(pending) == 2


@pytest.mark.parametrize(
    ("rewards", "discounts", "next_q_online", "next_q_target", "expected"),
    [
        # the online network picks action 1 (3 > 2 > 1), the target network values it at 2; plain DQN would
        # take the target network's own best (5): 1 + 0.5 * 5 = 3.5
        pytest.param([1], [0.5], [[1, 3, 2]], [[5, 2, 4]], [1 + 0.5 * 2], id="online-chooses-target-values"),
        # the game really ended: the reward alone, whatever the networks think of what would follow
        pytest.param([-1], [0], [[0, 9]], [[100, 100]], [-1], id="terminal"),
        pytest.param(
            [1, 0, -1, 2],
            [0.25, 0.5, 0, 0.125],
            [[0, 1], [2, -1], [0, 5], [4, 3]],
            [[10, 20], [-4, 8], [7, 7], [-8, 16]],
            [1 + 0.25 * 20, 0 + 0.5 * -4, -1, 2 + 0.125 * -8],
            id="batch",
        ),
    ],
)
def test_double_dqn_target(rewards, discounts, next_q_online, next_q_target, expected):
    def tensor(values: list) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    target = double_dqn_target(tensor(rewards), tensor(discounts), tensor(next_q_online), tensor(next_q_target))
    assert target.dtype == torch.float32
    assert target.tolist() == expected


def test_double_dqn_differs_from_dqn_when_the_networks_disagree():
    online, target_net = torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([[5.0, 2.0, 4.0]])
    reward, discount = torch.tensor([1.0]), torch.tensor([0.5])
    plain_dqn = reward + discount * target_net.max(dim=1).values
    assert plain_dqn.item() == 3.5
    assert double_dqn_target(reward, discount, online, target_net).item() == 2.0
