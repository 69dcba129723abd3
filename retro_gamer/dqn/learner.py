"""The learning half of DQN, in this process or in a second one on the second core.

:class:`Learner` holds what learning needs and nothing the games need: the online and target networks,
the optimizer and the replay memory. The trainer hands it the transitions made since its last request and
a number of gradient steps (``submit``), and takes the new weights for choosing actions only when it next
submits gradient steps. So actions are always chosen with weights one request old (``train_every`` env
steps, 48 by default), and :class:`LearnerProcess`, which learns in a child process while the trainer plays
the next turns, trains exactly as :class:`LocalLearner` in this process (at the same torch thread count),
number for number. Both are what :class:`LearnerHandle` says a learner does. The new weights cross over
through a shared file in memory, not a pipe.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from retro_gamer.dqn.network import QNetwork
from retro_gamer.dqn.replay_memory import PrioritizedReplayBuffer, ReplayBuffer, Transitions, transition_arrays
from retro_gamer.errors import RetroGamerError
from retro_gamer.run import checkpoint
from retro_gamer.run.training_state import LearnerState
from retro_gamer.runtime.child_process import ChildProcess

if TYPE_CHECKING:
    from retro_gamer.config.schema import RunConfig
    from retro_gamer.runtime.placement import Placement

P = ParamSpec("P")


class Outbox:
    """Transitions made since the last request, written into arrays that grow as needed and are reused."""

    def __init__(self, board_shape: tuple[int, ...], extras_size: int, capacity: int = 256) -> None:
        self._shapes = (tuple(board_shape), extras_size)
        self._rows = 0
        self._arrays = transition_arrays(capacity, *self._shapes)

    def __len__(self) -> int:
        return self._rows

    def add(
        self,
        board: np.ndarray,
        extras: np.ndarray,
        action: int,
        reward: float,
        discount: float,
        next_board: np.ndarray,
        next_extras: np.ndarray,
    ) -> None:
        i = self._rows
        if i == len(self._arrays.action):
            grown = transition_arrays(2 * i, *self._shapes)
            for old, new in zip(self._arrays, grown):
                new[:i] = old
            self._arrays = grown
        for array, value in zip(self._arrays, (board, extras, action, reward, discount, next_board, next_extras)):
            array[i] = value
        self._rows = i + 1

    def take(self) -> Transitions | None:
        """The rows added since the last take, as views valid until the next :meth:`add` (a request
        pickles or stores them at once); None if there are none."""
        n, self._rows = self._rows, 0
        return Transitions(*(array[:n] for array in self._arrays)) if n else None


def flat_parts(net: torch.nn.Module, flat: np.ndarray) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Each parameter of ``net`` with its part of ``flat`` (the parameters' values end to end)."""
    offset = 0
    for p in net.parameters():
        n = p.numel()
        yield p, flat[offset : offset + n]
        offset += n


def flat_size(weights: dict[str, torch.Tensor]) -> int:
    """Floats in the published weights: the network's parameters end to end (its state dict holds just those)."""
    return sum(w.numel() for w in weights.values())


class WeightSlots:
    """The learner's latest weights, flat, for the trainer to choose actions with: two copies and, last, which
    one is newest. Each publication fills the other copy, so the trainer can submit the next request first and
    copy the newest weights while the learner computes the next ones (the learner would idle during the copy
    otherwise). The newest copy is only overwritten by the
    request after next, which the trainer sends after its copy."""

    def __init__(self, array: np.ndarray):
        self.array = (
            array  # 2 * size + 1 floats: in memory shared with the trainer when the learner has its own process
        )
        self.size = (len(array) - 1) // 2

    @staticmethod
    def length(size: int) -> int:
        return 2 * size + 1

    def newest(self) -> np.ndarray:
        """The newest copy (read it while the learner is idle: it may publish again afterwards, into the other)."""
        slot = int(self.array[-1])
        return self.array[slot * self.size : (slot + 1) * self.size]

    def publish(self, net: torch.nn.Module) -> None:
        slot = 1 - int(self.array[-1])
        for p, part in flat_parts(net, self.array[slot * self.size : (slot + 1) * self.size]):
            part[:] = p.detach().reshape(-1).cpu().numpy()
        self.array[-1] = slot


def copy_weights(net: torch.nn.Module, flat: np.ndarray) -> None:
    """``net``'s parameters ← ``flat`` (their values end to end), copied, so ``flat`` may change later."""
    with torch.no_grad():
        for p, part in flat_parts(net, flat):
            p.copy_(torch.from_numpy(part).view_as(p))


def make_optimizer(q: QNetwork, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where the device supports it (on CPU it takes a third off each learning step)."""
    try:
        return torch.optim.Adam(q.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(q.parameters(), lr=lr)


def double_dqn_target(
    rewards: torch.Tensor, discounts: torch.Tensor, next_q_online: torch.Tensor, next_q_target: torch.Tensor
) -> torch.Tensor:
    """Double DQN's target for a batch: ``reward + discount * Q_target(next, argmax_a Q_online(next, a))``.

    The online network chooses the next action and the target network values it: taking the max of one
    network's own estimates would pick its overestimates (van Hasselt et al., 2016). ``rewards`` are n-step
    returns and ``discounts`` their γ^k, 0 where the game really ended (:mod:`~retro_gamer.dqn.n_step`);
    ``next_q_*`` are each network's values of the next observations, (batch, actions).
    """
    best_next = next_q_online.argmax(dim=1, keepdim=True)
    return rewards + discounts * next_q_target.gather(1, best_next).squeeze(1)


class Learner:
    """Networks, optimizer and replay memory, starting from the trainer's initial ``weights``. The latest
    weights are published into ``shared`` (a file mapped into memory, when the trainer is in another
    process) after every request with gradient steps."""

    def __init__(
        self,
        cfg: RunConfig,
        dims: dict[str, Any],
        weights: dict[str, torch.Tensor],
        device: torch.device,
        shared: str | None = None,
    ):
        t = cfg.trainer
        self.cfg, self.device = cfg, device
        with torch.random.fork_rng(devices=[]):  # the caller's torch random numbers stay its own
            self.q = QNetwork.from_dims(cfg.model, dims).to(self.device)
            self.q_target = QNetwork.from_dims(cfg.model, dims).to(self.device)
        self.q.load_state_dict(weights)
        self.q_target.load_state_dict(weights)
        self.optimizer = make_optimizer(self.q, t.lr)
        replay_cls = PrioritizedReplayBuffer if t.prioritized else ReplayBuffer
        extra = {"alpha": t.priority_alpha, "beta": t.priority_beta} if t.prioritized else {}
        self.replay = replay_cls(t.buffer_size, tuple(dims["board_shape"]), dims["extras_size"], seed=t.seed, **extra)
        self.updates = 0
        length = WeightSlots.length(flat_size(weights))
        self.published = WeightSlots(
            np.memmap(shared, np.float32, "r+", shape=(length,)) if shared else np.zeros(length, np.float32)
        )
        self._publish()

    def run(self, transitions: Transitions | None, steps: int) -> list[float]:
        """Store ``transitions``, take ``steps`` gradient steps, publish the weights; the losses."""
        if transitions is not None:
            self.replay.extend(transitions)
        losses = [self.learn() for _ in range(steps)]
        if steps:
            self._publish()
        return losses

    def learn(self) -> float:
        """One gradient step of Double DQN on an n-step batch."""
        t, dev = self.cfg.trainer, self.device
        b = self.replay.sample(t.batch_size)
        board, extras = torch.from_numpy(b.board).to(dev), torch.from_numpy(b.extras).to(dev)
        next_board, next_extras = torch.from_numpy(b.next_board).to(dev), torch.from_numpy(b.next_extras).to(dev)
        with torch.no_grad():
            onehot = self.q.one_hot(next_board) if next_board.shape[-1] else None  # once for both networks
            target = double_dqn_target(
                torch.from_numpy(b.reward).to(dev),
                torch.from_numpy(b.discount).to(dev),
                self.q(next_board, next_extras, onehot),
                self.q_target(next_board, next_extras, onehot),
            )
        q = self.q(board, extras).gather(1, torch.from_numpy(b.action).to(dev).unsqueeze(1)).squeeze(1)
        loss = (torch.from_numpy(b.weight).to(dev) * F.smooth_l1_loss(q, target, reduction="none")).mean()
        self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(self.q.parameters(), t.grad_clip)
        self.optimizer.step()
        if isinstance(self.replay, PrioritizedReplayBuffer):
            self.replay.update_priorities(b.slot, (q - target).detach().cpu().numpy())
        self.updates += 1
        if self.updates % t.target_update_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return loss.item()

    def _publish(self) -> None:
        if self.device.type != "meta":  # shapes only, no values to publish
            self.published.publish(self.q)

    # --- what the resume state keeps -------------------------------------------------------------
    def state(self) -> LearnerState:
        """The learner's part of ``resume.pt``."""
        return LearnerState(
            weights=self.q.state_dict(),
            target_weights=self.q_target.state_dict(),
            optimizer=self.optimizer.state_dict(),
            updates=self.updates,
        )

    def save_replay(self, run_dir: Path, manifest: dict[str, Any] | None) -> dict[str, Any]:
        return checkpoint.save_replay(run_dir, self.replay, manifest)

    def mark_saved(self) -> None:
        self.replay.mark_saved()

    def restore(self, state: LearnerState, replay: dict[str, Any] | None, run_dir: Path) -> tuple[int, str | None]:
        """Continue from what :meth:`state` gave and the replay memory that ``replay`` (a manifest) lists.
        Returns the transitions in memory, and None when the replay memory came back, else why not."""
        self.q.load_state_dict(state.weights)
        self.q_target.load_state_dict(state.target_weights)
        self.optimizer.load_state_dict(state.optimizer)
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.trainer.lr  # a changed learning rate takes effect on resume
        self.updates = state.updates
        self._publish()
        if replay is None:
            return 0, "trainer.save_replay=false"
        try:
            chunks = checkpoint.load_replay_chunks(run_dir, replay)
        except RetroGamerError as err:  # a chunk deleted or damaged: the rest of the state is still good
            return 0, str(err).split(" is corrupted")[0].removeprefix("Checkpoint ") + " is missing or damaged"
        self.replay.load_state_dict(replay, chunks)
        return self.replay.size, None

    def restart_from(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from a policy checkpoint alone: its weights, both networks; a fresh optimizer and memory."""
        self.q.load_state_dict(weights)
        self.q_target.load_state_dict(weights)
        self.updates = updates
        self._publish()


class LearnerHandle(Protocol):
    """What the trainer asks of its learner, whether it learns in this process (:class:`LocalLearner`) or in a
    second one (:class:`LearnerProcess`): requests (:meth:`submit`, then :meth:`wait`), and between them
    :class:`Learner`'s own methods for the resume state."""

    published: WeightSlots

    def submit(self, transitions: Transitions | None, steps: int) -> None: ...

    def wait(self) -> list[float]: ...

    def state(self) -> LearnerState: ...

    def restore(self, state: LearnerState, replay: dict[str, Any] | None, run_dir: Path) -> tuple[int, str | None]: ...

    def restart_from(self, weights: dict[str, torch.Tensor], updates: int) -> None: ...

    def save_replay(self, run_dir: Path, manifest: dict[str, Any] | None) -> dict[str, Any]: ...

    def mark_saved(self) -> None: ...

    def close(self) -> None: ...


class LocalLearner(Learner):
    """A :class:`Learner` in this process: a request runs when it is submitted."""

    def __init__(
        self, cfg: RunConfig, dims: dict[str, Any], weights: dict[str, torch.Tensor], device: torch.device
    ) -> None:
        super().__init__(cfg, dims, weights, device)
        self._losses: list[float] = []

    def submit(self, transitions: Transitions | None, steps: int) -> None:
        self._losses = self.run(transitions, steps)

    def wait(self) -> list[float]:
        """The losses of the request submitted last (once)."""
        losses, self._losses = self._losses, []
        return losses

    def close(self) -> None:
        pass


class LearnerProcess(ChildProcess[Learner]):
    """A :class:`Learner` in a child process (:mod:`~retro_gamer.runtime.child_process`): a request runs there while
    this process plays on; :meth:`wait` collects it. Its other methods run :class:`Learner`'s there."""

    role = "the learner process"

    def __init__(
        self, cfg: RunConfig, dims: dict[str, Any], weights: dict[str, torch.Tensor], device: torch.device
    ) -> None:
        length = WeightSlots.length(flat_size(weights))
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory, not disk, where there is one
        fd, path = tempfile.mkstemp(prefix="retro-gamer-weights-", dir=folder)
        self._in_flight = False
        try:
            os.ftruncate(fd, 4 * length)
            self.published = WeightSlots(np.memmap(path, np.float32, "r+", shape=(length,)))
            super().__init__(_learner_on_one_thread, cfg, dims, weights, device, path)
        finally:
            os.close(fd)
            os.unlink(path)  # both sides have it mapped; nothing is left behind whatever happens next

    def _post(self, method: Callable[Concatenate[Learner, P], Any], *args: P.args, **kwargs: P.kwargs) -> None:
        if self._in_flight:
            raise RuntimeError("the learner process was asked for more before its last request was collected")
        super()._post(method, *args, **kwargs)

    def submit(self, transitions: Transitions | None, steps: int) -> None:
        self._post(Learner.run, transitions, steps)
        self._in_flight = True

    def wait(self) -> list[float]:
        if not self._in_flight:
            return []
        self._in_flight = False
        losses: list[float] = self._answer()
        return losses

    def state(self) -> LearnerState:
        return self.call(Learner.state)

    def restore(self, state: LearnerState, replay: dict[str, Any] | None, run_dir: Path) -> tuple[int, str | None]:
        return self.call(Learner.restore, state, replay, run_dir)

    def restart_from(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        self.call(Learner.restart_from, weights, updates)

    def save_replay(self, run_dir: Path, manifest: dict[str, Any] | None) -> dict[str, Any]:
        return self.call(Learner.save_replay, run_dir, manifest)

    def mark_saved(self) -> None:
        self.call(Learner.mark_saved)

    def close(self) -> None:
        self._end()


def _learner_on_one_thread(
    cfg: RunConfig, dims: dict[str, Any], weights: dict[str, torch.Tensor], device: torch.device, shared: str
) -> Learner:
    """The learner process's :class:`Learner`, with torch on one thread: the trainer's process has the other core."""
    torch.set_num_threads(1)
    return Learner(cfg, dims, weights, device, shared)


def open_learner(
    cfg: RunConfig, dims: dict[str, Any], weights: dict[str, torch.Tensor], placement: Placement
) -> LearnerHandle:
    """The learner, on the device and in the process that ``placement`` names."""
    if placement.learner_process:
        return LearnerProcess(cfg, dims, weights, placement.device)
    return LocalLearner(cfg, dims, weights, placement.device)
