"""Replay memory: compact storage, ring overwrite, and the sum-tree's proportional sampling."""

from __future__ import annotations

import numpy as np

from retro_gamer.dqn.replay_memory import PrioritizedReplayBuffer, ReplayBuffer, SumTree, Transitions


def fill(buffer: ReplayBuffer, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
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
    assert (batch.slot == 7).mean() > 0.5
    assert batch.weight[batch.slot == 7].max() < batch.weight.max() + 1e-6
    assert batch.weight.max() == 1.0


def test_saving_rewrites_only_the_chunks_that_changed(tmp_path, monkeypatch):
    from retro_gamer.run import checkpoint

    monkeypatch.setattr(ReplayBuffer, "CHUNK", 100)  # small chunks, so a few hundred transitions make several
    buffer = ReplayBuffer(1000, (3, 3), 2)
    fill(buffer, 250)
    first = checkpoint.save_replay(tmp_path, buffer, None)
    buffer.mark_saved()
    assert len(first["chunks"]) == 3 == len(list((tmp_path / "replay").iterdir()))
    fill(buffer, 30, start=250)  # lands in chunk 2 only
    second = checkpoint.save_replay(tmp_path, buffer, first)
    assert second["chunks"][:2] == first["chunks"][:2] and second["chunks"][2] != first["chunks"][2]
    assert [p.name for p in checkpoint.prune_replay(tmp_path, second)] == [first["chunks"][2]]

    same = ReplayBuffer(1000, (3, 3), 2)
    same.load_state_dict(second, checkpoint.load_replay_chunks(tmp_path, second))
    assert same.size == 280 and np.array_equal(same.reward[:280], buffer.reward[:280])
    assert np.array_equal(same.sample(8).slot, buffer.sample(8).slot)  # the sampling RNG continues too

    smaller = ReplayBuffer(50, (3, 3), 2)
    smaller.load_state_dict(second, checkpoint.load_replay_chunks(tmp_path, second))
    assert smaller.size == 50 and list(smaller.reward[:3]) == [230.0, 231.0, 232.0]  # the newest that fit


def test_storing_a_request_at_once_equals_storing_it_row_by_row():
    """The learner stores each request's transitions with one ``extend``: the same memory as ``add`` after ``add``,
    past the ring's end and with more rows than it holds, and the same priorities."""
    rows = ReplayBuffer(64, (3, 3), 2)
    fill(rows, 64)
    batch = Transitions(*(getattr(rows, name)[:37].copy() for name in ReplayBuffer.ARRAYS))
    for cls in (ReplayBuffer, PrioritizedReplayBuffer):
        one_by_one, at_once = cls(10, (3, 3), 2), cls(10, (3, 3), 2)
        fill(one_by_one, 7)
        fill(at_once, 7)
        for part in (slice(0, 5), slice(5, 37)):  # wraps the ring, then more rows than it holds
            for row in zip(*(a[part] for a in batch)):
                one_by_one.add(*row)
            at_once.extend(Transitions(*(a[part] for a in batch)))
        for name in ReplayBuffer.ARRAYS:
            np.testing.assert_array_equal(getattr(one_by_one, name), getattr(at_once, name))
        assert (one_by_one.size, one_by_one.cursor) == (at_once.size, at_once.cursor) == (10, 4)
        assert one_by_one.changed_chunks() == at_once.changed_chunks()
        if cls is PrioritizedReplayBuffer:
            np.testing.assert_array_equal(one_by_one.tree.tree, at_once.tree.tree)
