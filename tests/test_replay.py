"""Replay memory: compact storage, ring overwrite, and the sum-tree's proportional sampling."""

from __future__ import annotations

import numpy as np

from retro_gamer.replay import PrioritizedReplayBuffer, ReplayBuffer, SumTree


def fill(buffer: ReplayBuffer, count: int) -> None:
    for i in range(count):
        board = np.full(buffer.board.shape[1:], i % 250, dtype=np.uint8)
        buffer.add(board, np.array([i, -i], np.float32), i % 5, float(i), 0.99, board, np.zeros(2, np.float32))


def test_snake_transition_fits_in_one_kilobyte():
    buffer = ReplayBuffer(1000, (11, 11), 2)
    assert buffer.bytes_per_transition <= 1024
    assert buffer.board.dtype == np.uint8


def test_ring_keeps_the_most_recent_transitions():
    buffer = ReplayBuffer(10, (3, 3), 2)
    fill(buffer, 25)
    assert buffer.size == 10
    assert sorted(buffer.reward.tolist()) == [float(i) for i in range(15, 25)]
    batch = buffer.sample(32)
    assert batch.board.shape == (32, 3, 3) and (batch.weight == 1).all()
    assert set(batch.reward.tolist()) <= set(range(15, 25))


def test_sum_tree_samples_in_proportion_to_priority():
    tree = SumTree(6)
    priorities = np.array([1.0, 0.0, 3.0, 6.0, 0.0, 10.0])
    tree.update(np.arange(6), priorities)
    assert tree.total == 20.0
    rng = np.random.default_rng(0)
    leaves = tree.find(rng.random(40_000) * tree.total)
    freq = np.bincount(leaves, minlength=6)[:6] / len(leaves)
    np.testing.assert_allclose(freq, priorities / 20.0, atol=0.01)
    tree.update(np.array([5, 5]), np.array([0.0, 0.0]))  # repeated index: last write wins
    assert tree.total == 10.0


def test_prioritized_buffer_prefers_large_errors_and_weights_them_down():
    buffer = PrioritizedReplayBuffer(64, (2, 2), 2, seed=1)
    fill(buffer, 64)
    errors = np.zeros(64)
    errors[7] = 100.0
    buffer.update_priorities(np.arange(64), errors)
    batch = buffer.sample(256)
    assert (batch.index == 7).mean() > 0.5
    assert batch.weight[batch.index == 7].max() < batch.weight.max() + 1e-6
    assert batch.weight.max() == 1.0
