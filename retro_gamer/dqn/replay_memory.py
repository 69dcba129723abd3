"""Replay memory: a preallocated numpy ring of compact n-step transitions, optionally prioritised.

Boards are stored as uint8 character indices (one byte a cell), so a snake transition costs
about 270 bytes instead of the ~24 KB of two float32 one-hot boards.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Transitions(NamedTuple):
    """n-step transitions, one row each, in the order of :attr:`ReplayBuffer.ARRAYS`."""

    board: np.ndarray
    extras: np.ndarray
    action: np.ndarray
    reward: np.ndarray  # discounted n-step return
    discount: np.ndarray  # gamma**k to bootstrap with, 0 where the game ended
    next_board: np.ndarray
    next_extras: np.ndarray


def transition_arrays(capacity: int, board_shape: tuple[int, ...], extras_size: int) -> Transitions:
    """Zeroed arrays for ``capacity`` transitions, one byte a board cell: the replay memory's and the trainer's outbox's."""
    board = (capacity, *board_shape)
    return Transitions(
        np.zeros(board, np.uint8),
        np.zeros((capacity, extras_size), np.float32),
        np.zeros(capacity, np.int16),
        np.zeros(capacity, np.float32),
        np.zeros(capacity, np.float32),
        np.zeros(board, np.uint8),
        np.zeros((capacity, extras_size), np.float32),
    )


class Batch(NamedTuple):
    """A sample: the fields of :class:`Transitions`, then importance-sampling weights (ones without
    prioritisation) and the slots they came from (for updating priorities)."""

    board: np.ndarray
    extras: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    next_board: np.ndarray
    next_extras: np.ndarray
    weight: np.ndarray
    slot: np.ndarray


class ReplayBuffer:
    """Uniform replay over the most recent ``capacity`` transitions."""

    board: np.ndarray  # one array per field of Transitions, ``capacity`` rows each
    extras: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    discount: np.ndarray
    next_board: np.ndarray
    next_extras: np.ndarray

    def __init__(self, capacity: int, board_shape: tuple[int, ...], extras_size: int, seed: int = 0):
        self.capacity = capacity
        for name, array in zip(self.ARRAYS, transition_arrays(capacity, tuple(board_shape), extras_size)):
            setattr(self, name, array)
        self.size = 0
        self.cursor = 0
        self.rng = np.random.default_rng(seed)
        self._dirty: set[int] = set()  # chunks changed since the last save

    @property
    def bytes_per_transition(self) -> int:
        return sum(int(getattr(self, name).nbytes) for name in self.ARRAYS) // self.capacity

    def add(
        self,
        board: np.ndarray,
        extras: np.ndarray,
        action: int,
        reward: float,
        discount: float,
        next_board: np.ndarray,
        next_extras: np.ndarray,
    ) -> int:
        """Store one transition; its slot."""
        rows = Transitions(
            board[None],
            extras[None],
            np.array([action]),
            np.array([reward]),
            np.array([discount]),
            next_board[None],
            next_extras[None],
        )
        return int(self.extend(rows)[0])

    def extend(self, rows: Transitions) -> np.ndarray:
        """Store ``rows`` in order, as many :meth:`add` calls would (the oldest overwritten first), in one
        write per array: the learner stores each request's ~40 transitions so. The slots, one per row kept."""
        n = len(rows.action)
        skip = max(0, n - self.capacity)  # rows that later rows of the same call would overwrite at once
        index = (self.cursor + skip + np.arange(n - skip)) % self.capacity
        for name, values in zip(self.ARRAYS, rows):
            getattr(self, name)[index] = values[skip:]
        self._dirty.update((index // self.CHUNK).tolist())
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return index

    def _gather(self, index: np.ndarray, weight: np.ndarray) -> Batch:
        return Batch(
            self.board[index],
            self.extras[index],
            self.action[index].astype(np.int64),
            self.reward[index],
            self.discount[index],
            self.next_board[index],
            self.next_extras[index],
            weight,
            index,
        )

    def sample(self, batch_size: int) -> Batch:
        index = self.rng.integers(0, self.size, size=batch_size)
        return self._gather(index, np.ones(batch_size, dtype=np.float32))

    # --- saving with the resume state ------------------------------------------------------
    ARRAYS = Transitions._fields  # the arrays, by attribute name
    CHUNK = 8192  # transitions per saved file: a save rewrites only the chunks that changed since the last

    @property
    def n_chunks(self) -> int:
        return -(-self.size // self.CHUNK)

    def changed_chunks(self) -> set[int]:
        """Chunks written to since :meth:`mark_saved`."""
        return set(self._dirty)

    def mark_saved(self) -> None:
        self._dirty.clear()

    def chunk(self, k: int) -> dict[str, torch.Tensor]:
        """Ring slots ``[k*CHUNK, (k+1)*CHUNK)`` (the filled part) as tensors, which
        ``torch.load(weights_only=True)`` reads back without unpickling code."""
        part = slice(k * self.CHUNK, min((k + 1) * self.CHUNK, self.size))
        return {name: torch.from_numpy(getattr(self, name)[part].copy()) for name in self.ARRAYS}

    def state_dict(self) -> dict[str, Any]:
        """Everything but the transitions (those go in :meth:`chunk` files): counters and the sampling RNG."""
        return {
            "size": self.size,
            "cursor": self.cursor,
            "capacity": self.capacity,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any], chunks: list[dict[str, torch.Tensor]]) -> None:
        """Restore :meth:`state_dict` and its chunks. Same capacity: the exact ring layout, so sampling
        continues exactly; another capacity: the newest transitions that fit, oldest first."""
        size, cursor = int(state["size"]), int(state["cursor"])
        arrays = {
            name: np.concatenate([c[name].numpy() for c in chunks]) if chunks else getattr(self, name)[:0]
            for name in self.ARRAYS
        }
        if state["capacity"] == self.capacity:
            order = np.arange(size)
            self.cursor = cursor
            self._dirty = set()  # the chunk files on disk match this layout
        else:
            chronological = np.arange(size) if size < state["capacity"] else np.roll(np.arange(size), -cursor)
            order = chronological[-self.capacity :]
            self.cursor = len(order) % self.capacity
        for name, values in arrays.items():
            getattr(self, name)[: len(order)] = values[order]
        self.size = len(order)
        if state["capacity"] != self.capacity:
            self._dirty = set(range(self.n_chunks))  # a new layout: every chunk is written afresh
        self.rng.bit_generator.state = state["rng"]
        self._restored(state, order)

    def _restored(self, state: dict[str, Any], order: np.ndarray) -> None:
        """Hook for subclasses that keep more per-transition state."""


class SumTree:
    """Binary tree of priorities in one array: leaves at ``[capacity, 2*capacity)``, sums above.

    Sampling and updates are vectorised over a batch and cost O(log N) each.
    """

    def __init__(self, capacity: int):
        self.capacity = 1 << max(capacity - 1, 1).bit_length()
        self.tree = np.zeros(2 * self.capacity, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def update(self, index: np.ndarray, priority: np.ndarray) -> None:
        node = np.asarray(index) + self.capacity
        self.tree[node] = priority
        node = np.unique(node // 2)
        while node[0] >= 1:
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]
            if node[0] == 1:
                break
            node = np.unique(node // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index for each cumulative mass in ``[0, total)``."""
        node = np.ones(len(mass), dtype=np.int64)
        mass = mass.copy()
        while node[0] < self.capacity:
            left = 2 * node
            go_right = mass >= self.tree[left]
            mass -= np.where(go_right, self.tree[left], 0.0)
            node = left + go_right
        return node - self.capacity


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay (Schaul et al. 2016) on a :class:`SumTree`."""

    def __init__(
        self,
        capacity: int,
        board_shape: tuple[int, ...],
        extras_size: int,
        seed: int = 0,
        alpha: float = 0.6,
        beta: float = 0.4,
    ):
        super().__init__(capacity, board_shape, extras_size, seed)
        self.tree = SumTree(capacity)
        self.alpha, self.beta = alpha, beta
        self.max_priority = 1.0

    def extend(self, rows: Transitions) -> np.ndarray:
        index = super().extend(rows)
        if len(index):
            self.tree.update(index, np.full(len(index), self.max_priority))
        return index

    def sample(self, batch_size: int) -> Batch:
        # stratified: one draw from each of batch_size equal slices of the total mass
        edges = np.arange(batch_size) * (self.tree.total / batch_size)
        mass = edges + self.rng.random(batch_size) * (self.tree.total / batch_size)
        index = np.minimum(self.tree.find(mass), self.size - 1)
        prob = self.tree.tree[index + self.tree.capacity] / self.tree.total
        weight = (self.size * np.maximum(prob, 1e-12)) ** -self.beta
        return self._gather(index, (weight / weight.max()).astype(np.float32))

    def update_priorities(self, index: np.ndarray, td_error: np.ndarray) -> None:
        priority = (np.abs(td_error) + 1e-3) ** self.alpha
        self.max_priority = max(self.max_priority, float(priority.max()))
        self.tree.update(index, priority)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priority"] = torch.from_numpy(self.tree.tree[self.tree.capacity : self.tree.capacity + self.size].copy())
        state["max_priority"] = self.max_priority
        return state

    def _restored(self, state: dict[str, Any], order: np.ndarray) -> None:
        self.tree = SumTree(self.capacity)
        if len(order):
            self.tree.update(np.arange(len(order)), state["priority"].numpy()[order])
        self.max_priority = float(state["max_priority"])
