"""Deep Q-learning, readable top to bottom: Double DQN with a dueling head, n-step returns,
Huber loss, gradient clipping, a target network, an epsilon schedule by environment step with
random warm-up, uniform or prioritised replay, and several games stepped per batched action choice.
This module plays and chooses actions; the gradient step, the networks it trains and the replay memory
are :mod:`retro_gamer.dqn.learner`'s, in this process or a second one.

Reporting goes through :mod:`retro_gamer.dqn.callbacks`; this module never imports MLflow.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from retro_gamer.config.schema import ModelKind, RunConfig, to_toml_dict
from retro_gamer.dqn.callbacks import Callback, Window
from retro_gamer.dqn.learner import LearnerHandle, Outbox, copy_weights, open_learner
from retro_gamer.dqn.n_step import PendingStep, n_step_transitions
from retro_gamer.dqn.network import NumpyMLP, QNetwork
from retro_gamer.env.environment import GameEnvironment, check_rules
from retro_gamer.env.game_batch import open_games
from retro_gamer.games import game_factory
from retro_gamer.run import checkpoint
from retro_gamer.run.training_state import TrainingState
from retro_gamer.runtime.child_process import preemption_signal
from retro_gamer.runtime.placement import run_placement


def build_q_network(cfg: RunConfig, env: GameEnvironment) -> QNetwork:
    return QNetwork.from_dims(cfg.model, env.dims)


class StopNow(KeyboardInterrupt):
    """A second Ctrl+C/SIGTERM: leave at once. Files stay consistent (every write is atomic); the
    end-of-training callbacks still run, and the entry points print one line, no traceback."""


class StopRequest:
    """Ctrl+C, SIGTERM or a cluster's :func:`~retro_gamer.runtime.child_process.preemption_signal` once: stop soon
    (at the next episode end, or within ``grace_s`` seconds by cutting the games in progress short), save, exit
    cleanly. Twice: :class:`StopNow`. The time limit asks the same, for its own ``reason``."""

    def __init__(self, grace_s: float = 1.0) -> None:
        self.requested = False
        self.reason = "interrupted"
        self.grace_s = grace_s
        self.since: float | None = None
        self.signal: int | None = None  # the signal that asked for the stop, if one did
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, preemption_signal()):
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise StopNow
        self.request()
        self.signal = signum
        print("\nStopping: saving a checkpoint (press Ctrl+C again to stop at once) …", flush=True)

    def request(self, reason: str = "interrupted") -> None:
        if not self.requested:
            self.requested, self.since, self.reason = True, time.perf_counter(), reason

    def overdue(self) -> bool:
        """True once a requested stop has waited ``grace_s`` for an episode to end."""
        return self.since is not None and time.perf_counter() - self.since >= self.grace_s

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def pass_on(self) -> None:
        """Once the stop is saved: a preemption signal goes on to the handler this process had for it before
        training. submitit's resubmits the job (the run then resumes from what was just saved) and exits."""
        sig = self.signal
        previous = self._previous.get(sig) if sig is not None and sig == preemption_signal() else None
        if callable(previous):
            previous(sig, None)


@dataclass
class GameGroup:
    """Games that take their turns together, one action choice for all: their positions among all games, their
    latest observations, and each one's episode so far (indexed by position in the group)."""

    games: list[int]
    board: np.ndarray
    extras: np.ndarray
    pending: list[deque[PendingStep]]  # steps not yet in an n-step transition
    episode_return: np.ndarray
    episode_length: np.ndarray
    actions: np.ndarray = field(default_factory=lambda: np.empty(0))  # of the turn asked of it
    asked: int = 0  # how many of its games (the first ones) play the turn asked of it

    @classmethod
    def split(cls, first: tuple[np.ndarray, np.ndarray], count: int) -> list[GameGroup]:
        """All games, from their first observations ``first``, in ``count`` groups of consecutive games."""
        board, extras = first
        n = len(board)
        groups = [list(range(k * n // count, (k + 1) * n // count)) for k in range(count)]
        return [
            cls(g, board[g], extras[g], [deque() for _ in g], np.zeros(len(g)), np.zeros(len(g), dtype=np.int64))
            for g in groups
        ]


class DQNTrainer:
    OUTBOX_LIMIT = 4096  # transitions sent without gradient steps (in warm-up) once this many wait
    # a time-limited run with trainer.exploration_fraction sizes its exploration from its speed once learning has
    # run this many env steps, or this share of the time limit, whichever comes first
    MEASURE_STEPS, MEASURE_SHARE = 10_000, 0.05

    def __init__(self, cfg: RunConfig, run_dir: Path, callbacks: list[Callback] | tuple[Callback, ...] = ()):
        self.cfg, self.run_dir, self.callbacks = cfg, Path(run_dir), list(callbacks)
        self._stop: StopRequest | None = None  # while train() runs: what request_stop asks
        t = cfg.trainer
        resume_path = self.run_dir / checkpoint.RESUME_FILE
        # read once: where the run started, then what it resumes
        state = TrainingState.from_dict(checkpoint.load(resume_path)) if resume_path.is_file() else None
        self._threads_before = torch.get_num_threads()
        self._helpers = contextlib.ExitStack()  # what _close ends: the games, the learner
        try:
            torch.manual_seed(t.seed)
            self.rng = np.random.default_rng(t.seed)
            from retro_gamer.config.autoconfig import rules

            check_rules(cfg.game, game_factory(cfg.game, self.run_dir), f"The run {self.run_dir}")
            started_with = (
                None if state is None or state.game_process is None else (state.learner_process, state.game_process)
            )
            self.placement = run_placement(
                cfg,
                started_with,
                lambda: len(game_factory(cfg.game, self.run_dir)().agents),
                rules()["busy_game_agents"],
            )
            if self.placement.torch_threads:
                torch.set_num_threads(self.placement.torch_threads)
            self.games = open_games(cfg.game, self.run_dir, t.num_envs, t.seed, self.placement.game_process)
            self._helpers.callback(self.games.close)
            self._build(cfg, state)
        except BaseException:
            self._close()
            raise

    @property
    def device(self) -> torch.device:
        """Where learning runs and actions are chosen (:attr:`placement`'s)."""
        return self.placement.device

    def _build(self, cfg: RunConfig, state: TrainingState | None) -> None:
        """The network that chooses actions, the learner (see :mod:`~retro_gamer.dqn.learner`) and counters; then
        what the run directory has to resume (``state``: its ``resume.pt``, if any)."""
        t, dims = cfg.trainer, self.games.dims
        self.q = QNetwork.from_dims(cfg.model, dims)  # chooses actions; the learner's latest weights at each request
        self.learner = open_learner(cfg, dims, self.q.state_dict(), self.placement)
        self._helpers.callback(self.learner.close)
        self.q.to(self.device)
        self._numpy_q = NumpyMLP(self.q) if self.q.kind is ModelKind.mlp and self.device.type == "cpu" else None
        self._outbox = Outbox(dims["board_shape"], dims["extras_size"])  # transitions for the learner's next request
        self.stored = 0  # transitions in the replay memory (after the outbox's are sent)

        self.episode = 0  # completed episodes, over all sessions of this run
        self.env_steps = 0
        self.updates = 0
        self.wall_seconds = 0.0  # summed over sessions
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self._losses: list[float] = []
        self._learn_credit = 0.0  # fractional gradient steps owed (train_every may not divide num_envs)
        self._learn_from = t.warmup_steps  # env steps before learning starts (later after a resume without replay)
        # epsilon falls linearly from (env step, epsilon) to epsilon_end at an env step; see _size_exploration
        self._schedule = self._planned_schedule()
        self.exploration: dict[str, Any] | None = None  # how a time-limited run sized its exploration, once it has
        self.resume_note: str | None = None  # what a resume restored, for the run output
        self._replay_manifest: dict[str, Any] | None = None  # the replay chunk files the saved resume.pt lists
        self._session_start = time.perf_counter()
        self._session_steps = 0
        self._resume_if_possible(state)

    # --- schedule and statistics -----------------------------------------------------------
    def _planned_schedule(self) -> tuple[int, float, int]:
        """From the end of warm-up, epsilon_decay_steps long; with exploration_fraction of a step budget, ending
        by that share of it if that comes first (a time budget's share is found in the run: _size_exploration)."""
        t = self.cfg.trainer
        end = t.warmup_steps + t.epsilon_decay_steps
        if t.exploration_fraction is not None and t.total_env_steps is not None:
            end = min(end, max(t.warmup_steps, round(t.exploration_fraction * t.total_env_steps)))
        return t.warmup_steps, t.epsilon_start, end

    @staticmethod
    def _sized_schedule(exploration: dict[str, Any]) -> tuple[int, float, int]:
        return exploration["decided_at_env_step"], exploration["from_epsilon"], exploration["epsilon_end_at_env_step"]

    def epsilon(self) -> float:
        t = self.cfg.trainer
        if self.env_steps < t.warmup_steps:
            return 1.0
        start, start_epsilon, end = self._schedule
        if self.env_steps >= end:
            return t.epsilon_end
        frac = (self.env_steps - start) / max(1, end - start)
        return start_epsilon + frac * (t.epsilon_end - start_epsilon)

    def _size_exploration(self, deadline: float, measure_from: tuple[int, float]) -> None:
        """A time-limited run's exploration, sized to its budget once: the env steps per second of this session
        since ``measure_from`` (env steps, time) give the steps the time left will bring, and epsilon then falls
        from where it is to its end by ``exploration_fraction`` of all the run's steps (never later than planned).
        What was measured and used is kept in resume.pt and metrics.json."""
        t = self.cfg.trainer
        if t.exploration_fraction is None:  # a schedule set in env steps is not sized to the time
            return
        now = time.perf_counter()
        rate = (self.env_steps - measure_from[0]) / max(1e-9, now - measure_from[1])
        expected = self.env_steps + rate * max(0.0, deadline - now)
        end = max(self.env_steps, min(self._schedule[2], round(t.exploration_fraction * expected)))
        self.exploration = {
            "decided_at_env_step": self.env_steps,
            "from_epsilon": self.epsilon(),
            "measured_env_steps_per_s": round(rate, 1),
            "expected_env_steps": round(expected),
            "epsilon_end_at_env_step": end,
        }
        self._schedule = self._sized_schedule(self.exploration)
        print(
            f"Exploration sized to the time limit: {rate:,.0f} env steps/s measured while learning, so about "
            f"{expected:,.0f} env steps in all; epsilon reaches {t.epsilon_end:g} at env step {end:,} "
            f"(trainer.exploration_fraction = {t.exploration_fraction:g}).",
            flush=True,
        )

    def _start_measuring(self, deadline: float | None) -> None:
        """Whether this session sizes its exploration to its time limit (once in a run, see :meth:`_size_exploration`):
        with ``exploration_fraction``, a time limit and no step budget."""
        t = self.cfg.trainer
        self._sizing = (
            t.exploration_fraction is not None
            and t.total_env_steps is None
            and deadline is not None
            and self.exploration is None
        )
        self._measure_from: tuple[int, float] | None = None  # (env steps, time) when learning started

    def _size_exploration_once_measured(self, deadline: float | None) -> None:
        """Measure this session's speed from when learning starts, and size the exploration once that has run
        ``MEASURE_STEPS`` env steps or ``MEASURE_SHARE`` of the time limit, whichever comes first."""
        limit = self.cfg.trainer.time_limit
        if not self._sizing or deadline is None or limit is None:
            return
        if self._measure_from is None:
            if self.env_steps >= self._learn_from:
                self._measure_from = (self.env_steps, time.perf_counter())
        elif (
            self.env_steps - self._measure_from[0] >= self.MEASURE_STEPS
            or time.perf_counter() - self._measure_from[1] >= self.MEASURE_SHARE * 60 * limit
        ):
            self._size_exploration(deadline, self._measure_from)
            self._sizing = False

    def steps_per_s(self) -> float:
        return self._session_steps / max(1e-9, time.perf_counter() - self._session_start)

    def total_wall_seconds(self) -> float:
        """Training wall clock over every session of this run."""
        return self.wall_seconds + (time.perf_counter() - self._session_start)

    def recent_mean_return(self, n: int = 100) -> float:
        return float(np.mean(self.returns[-n:])) if self.returns else 0.0

    def summary(self) -> dict[str, Any]:
        """Totals for ``metrics.json``. Only the two timing keys, and a time-limited run's exploration, depend on the
        machine's speed."""
        wall = self.total_wall_seconds()
        window = self.cfg.trainer.checkpoint_every
        return {
            "episodes": self.episode,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_seconds": round(wall, 3),
            "env_steps_per_s": round(self.env_steps / max(wall, 1e-9), 1),
            "mean_return": round(float(np.mean(self.returns[-window:])), 6) if self.returns else None,
            "mean_length": round(float(np.mean(self.lengths[-window:])), 6) if self.lengths else None,
            "best_mean_return": self._best_window_mean(window),
            "epsilon_end_at_env_step": self._schedule[2],
            # the schedule the run keeps: sized to its time limit, or set by a warm start (retro_gamer.run.warm_start)
            **(
                {
                    (
                        "warm_start" if "warm_start_from" in self.exploration else "exploration_sized_to_time_limit"
                    ): self.exploration
                }
                if self.exploration
                else {}
            ),
        }

    def _best_window_mean(self, window: int) -> float | None:
        if not self.returns:
            return None
        r = np.asarray(self.returns)
        means = [r[i : i + window].mean() for i in range(0, len(r), window)]
        return round(float(max(means)), 6)

    # --- acting and learning ---------------------------------------------------------------
    def act(self, board: np.ndarray, extras: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for all games at once (one forward pass)."""
        n, n_actions = len(board), self.games.dims["n_actions"]
        if epsilon >= 1.0:
            return self.rng.integers(0, n_actions, size=n)
        actions: np.ndarray
        if self._numpy_q is not None:
            actions = self._numpy_q(board, extras).argmax(axis=1)
        else:
            with torch.inference_mode():
                q = self.q(torch.from_numpy(board).to(self.device), torch.from_numpy(extras).to(self.device))
            actions = q.argmax(dim=1).cpu().numpy()
        explore = self.rng.random(n) < epsilon
        actions[explore] = self.rng.integers(0, n_actions, size=int(explore.sum()))
        return actions

    def _store_n_step(
        self, pending: deque[PendingStep], next_board: np.ndarray, next_extras: np.ndarray, ended: bool, flush: bool
    ) -> None:
        """Send the n-step transitions due from one game's ``pending`` steps (see :mod:`~retro_gamer.dqn.n_step`),
        each paired with the observation after its newest step, to the learner's next request."""
        t = self.cfg.trainer
        for board, extras, action, n_step_return, discount in n_step_transitions(
            pending, t.gamma, t.n_step, ended=ended, flush=flush
        ):
            self._outbox.add(board, extras, action, n_step_return, discount, next_board, next_extras)
            self.stored = min(self.stored + 1, t.buffer_size)

    def train(self) -> dict[str, Any]:
        """Train until ``trainer.episodes``, ``trainer.time_limit`` or Ctrl+C/SIGTERM; returns the summary.

        The end-of-training callbacks always run (``finally``), told in ``summary["status"]``
        whether the run ``finished``, was ``interrupted`` (Ctrl+C, SIGTERM) or ``failed``.
        """
        try:  # the first games, checked against config.toml (their board size), before anything is written
            first = self.games.reset()
        except BaseException:
            self._close()
            raise
        stop_reason, status = "error", "failed"
        try:
            # numpy's BLAS on one thread: an action choice's matrices are small, and waiting for a second
            # thread means waiting for the core that learns or plays
            with StopRequest() as stop, threadpool_limits(limits=1, user_api="blas"):
                self._stop = stop
                for cb in self.callbacks:  # a Ctrl+C while they start (the console's first line is out) stops cleanly
                    cb.on_train_start(self)
                stop_reason = self._loop(stop, first)
            self._save_final()
            status = "interrupted" if stop_reason == "interrupted" else "finished"
        except KeyboardInterrupt:
            stop_reason, status = "stopped_at_once", "interrupted"
            raise
        finally:
            self._close()
            summary = self.summary()
            summary["stopped_by"], summary["status"] = stop_reason, status
            self._end_callbacks(summary)
        stop.pass_on()
        return summary

    def request_stop(self, reason: str) -> None:
        """Ask training to stop at the next episode end, as Ctrl+C does, with everything saved; a callback's way
        to end a run early (a tuning trial its pruner stops). ``summary["stopped_by"]`` is ``reason``, and the
        run counts as finished: it stopped by its own rule, not the user's."""
        if self._stop is None:
            raise RuntimeError("request_stop is for callbacks, while train() runs")
        self._stop.request(reason)

    def _loop(self, stop: StopRequest, first: tuple[np.ndarray, np.ndarray]) -> str:
        """Step every game, store transitions, learn; returns why it stopped.

        With the games in a second process they play in two groups, taking turns: while one group's turn
        is played there (see :mod:`~retro_gamer.env.game_batch`), this process records the other's last turn,
        chooses its next actions and learns. In this process all games are one group.

        A game that ends is restarted only after the stop check and before its next turn, so a run stopped
        at an episode end and resumed draws the same random numbers as one never stopped. A stop (Ctrl+C,
        SIGTERM, time limit) takes the next episode end, or after ``stop.grace_s`` cuts the games in
        progress short: the turn already asked of the other group is still recorded, every step is kept
        (unfinished games as truncations, bootstrapped as at ``max_turns``), and unfinished episodes are
        not counted.
        """
        t = self.cfg.trainer
        deadline = None if t.time_limit is None else time.perf_counter() + 60 * t.time_limit
        self._start_measuring(deadline)
        groups = GameGroup.split(first, min(self.games.groups, t.num_envs))
        self._open_window()
        if self.episode >= t.episodes:
            return "episodes"
        if self._steps_spent():
            return "env_steps"
        for group in groups:
            self._ask(group, groups)
        while True:
            for k, group in enumerate(groups):
                finished = self._record(group)
                self._size_exploration_once_measured(deadline)
                if deadline is not None and not stop.requested and time.perf_counter() >= deadline:
                    stop.request("time_limit")
                spent = self._steps_spent()
                stopping = spent or (stop.requested and bool(finished or stop.overdue()))
                if stopping or self.episode >= t.episodes:
                    for other in groups[k + 1 :] + groups[:k]:  # the turns already asked of them
                        self._record(other)
                    if not stopping:
                        return "episodes"
                    self._keep_cut_short(groups)
                    return "env_steps" if spent else stop.reason
                self._restart(group, finished)
                self._ask(group, groups)

    def _steps_spent(self) -> bool:
        """Whether a step budget (``trainer.total_env_steps``) is used up."""
        budget = self.cfg.trainer.total_env_steps
        return budget is not None and self.env_steps >= budget

    def _ask(self, group: GameGroup, groups: list[GameGroup]) -> None:
        """Ask ``group``'s next turn, then learn while the games play it. With a step budget, only as many of its
        games play as it has steps left after the turns asked of every group."""
        budget = self.cfg.trainer.total_env_steps
        asked = len(group.games)
        if budget is not None:
            asked = max(0, min(asked, budget - self.env_steps - sum(g.asked for g in groups)))
        group.asked = asked
        if not asked:
            return
        group.actions = self.act(group.board[:asked], group.extras[:asked], self.epsilon())
        self.games.step_async(group.actions, group.games[:asked])
        self._learn_due(asked)

    def _record(self, group: GameGroup) -> list[int]:
        """Collect ``group``'s turn into replay memory, counting the episodes it ended; the games of it that ended
        (positions in the group)."""
        if not group.asked:
            return []
        turn, last_board, last_extras, finished = self.games.step_wait(), group.board, group.extras, []
        for j in range(group.asked):
            reward, ended = float(turn.reward[j]), bool(turn.terminated[j])
            done = ended or bool(turn.truncated[j])
            group.episode_return[j] += reward
            group.episode_length[j] += 1
            group.pending[j].append((last_board[j], last_extras[j], int(group.actions[j]), reward))
            self._store_n_step(group.pending[j], turn.board[j], turn.extras[j], ended=ended, flush=done)
            if done:
                finished.append(j)
                if self.episode < self.cfg.trainer.episodes:
                    self._finish_episode(float(group.episode_return[j]), int(group.episode_length[j]))
                group.episode_return[j], group.episode_length[j] = 0.0, 0
        if group.asked == len(group.games):
            group.board, group.extras = turn.board, turn.extras
        else:  # the last turn of a step budget: the games left out keep their observations
            group.board = np.concatenate([turn.board, last_board[group.asked :]])
            group.extras = np.concatenate([turn.extras, last_extras[group.asked :]])
        self.env_steps += group.asked
        self._session_steps += group.asked
        group.asked = 0
        return finished

    def _restart(self, group: GameGroup, finished: list[int]) -> None:
        """Start new games in place of ``group``'s ``finished`` ones (positions in the group)."""
        if finished:
            group.board[finished], group.extras[finished] = self.games.reset([group.games[j] for j in finished])

    def _keep_cut_short(self, groups: list[GameGroup]) -> None:
        """At a stop: the games in progress end here; what they taught goes to replay memory as truncations."""
        for group in groups:
            for j in range(len(group.games)):
                self._store_n_step(group.pending[j], group.board[j], group.extras[j], ended=False, flush=True)

    def _close(self) -> None:
        """End the learner and the games (and their processes), once; give torch back the threads it had."""
        self._helpers.close()
        torch.set_num_threads(self._threads_before)

    def _learn_due(self, new_steps: int) -> None:
        """Submit the gradient steps owed for ``new_steps`` env steps (``train_every`` may not divide them),
        once warm-up is over and the replay memory holds a batch, with the transitions made since the last
        request. Actions from now on use the weights of the request before (it is done: the learner
        finishes one request before the next)."""
        t = self.cfg.trainer
        steps = 0
        if self.env_steps >= self._learn_from and self.stored >= t.batch_size:
            self._learn_credit += new_steps / t.train_every
            steps = int(self._learn_credit)
            self._learn_credit -= steps
        if steps or len(self._outbox) >= self.OUTBOX_LIMIT:
            self._collect()
            newest = self.learner.published.newest()  # while the learner is idle; it publishes into the other copy next
            self.learner.submit(self._outbox.take(), steps)
            if steps:
                copy_weights(self.q, newest)
            self.updates += steps

    def _collect(self) -> None:
        """Wait for the learner's last request; keep its losses."""
        self._losses.extend(self.learner.wait())

    def _end_callbacks(self, summary: dict[str, Any]) -> None:
        """Run every ``on_train_end``; one that fails cannot stop the others or hide the first error."""
        for cb in self.callbacks:
            try:
                cb.on_train_end(self, summary)
            except Exception as err:  # noqa: BLE001 - reported, and the run's own files are already safe
                print(f"warning: {type(cb).__name__} failed at the end of training: {err}", file=sys.stderr, flush=True)

    def _finish_episode(self, episode_return: float, length: int) -> None:
        self.episode += 1
        self.returns.append(episode_return)
        self.lengths.append(length)
        for cb in self.callbacks:
            cb.on_episode_end(self, self.episode, episode_return, length)
        if self.episode % self.cfg.trainer.checkpoint_every == 0 or self.episode == self.cfg.trainer.episodes:
            self._checkpoint()

    # --- persistence -----------------------------------------------------------------------
    def _open_window(self) -> None:
        """Start the statistics window that the next checkpoint line reports."""
        self._window = (self.episode, self.env_steps, time.perf_counter())

    def _save_final(self) -> None:
        """At a stop: a checkpoint for the episodes since the last one, and the resume state."""
        if self.episode != self._window[0] or not checkpoint.list_checkpoints(self.run_dir):
            self._checkpoint()
        else:
            self._save_resume_state()

    def _checkpoint(self) -> None:
        """Resume state first, then the policy checkpoint (see :mod:`retro_gamer.run.checkpoint` for why)."""
        start_episode, start_steps, start_time = self._window
        self._collect()  # its losses belong to this window, wherever the learner runs
        count = self.episode - start_episode
        returns, lengths = self.returns[len(self.returns) - count :], self.lengths[len(self.lengths) - count :]
        loss = float(np.mean(self._losses)) if self._losses else None
        self._losses.clear()
        window = Window(
            first_episode=start_episode + 1,
            last_episode=self.episode,
            mean_return=float(np.mean(returns)) if returns else 0.0,
            mean_length=float(np.mean(lengths)) if lengths else 0.0,
            epsilon=self.epsilon(),
            loss=loss,
            env_steps=self.env_steps,
            steps_per_s=(self.env_steps - start_steps) / max(1e-9, time.perf_counter() - start_time),
        )
        saved = self._save_resume_state(window.mean_return)
        path = checkpoint.write_policy_checkpoint(self.run_dir, saved)
        checkpoint.prune(self.run_dir, self.cfg.trainer.keep_checkpoints)
        self._open_window()
        for cb in self.callbacks:
            cb.on_checkpoint(self, path, window)

    def _synced_learner(self) -> LearnerHandle:
        """The learner, once its last request is done and every transition made is in its memory."""
        self._collect()
        if len(self._outbox):
            self.learner.submit(self._outbox.take(), 0)
            self._collect()
        return self.learner

    def _training_state(self, mean_return: float | None, replay: dict[str, Any] | None) -> TrainingState:
        """This run's state now, for ``resume.pt`` and (its policy part) the checkpoint: ``mean_return`` is the
        checkpoint window's, ``replay`` the manifest of the replay chunks saved with it."""
        return TrainingState(
            episode=self.episode,
            env_steps=self.env_steps,
            mean_return=mean_return,
            wall_seconds=self.total_wall_seconds(),
            config=to_toml_dict(self.cfg),
            observation=self.games.dims,
            learner=self._synced_learner().state(),  # its latest weights, not the ones choosing actions
            returns=self.returns,
            lengths=self.lengths,
            learn_credit=self._learn_credit,
            learn_from=self._learn_from,
            exploration=self.exploration,
            python_random=self.games.random_state(),
            numpy_random=self.rng.bit_generator.state,
            torch_random=torch.get_rng_state(),
            cuda_random=torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            replay=replay,
            acting_weights=self.q.state_dict(),
            game_process=self.placement.game_process,
            learner_process=self.placement.learner_process,
        )

    def _save_resume_state(self, mean_return: float | None = None) -> dict[str, Any]:
        """Write ``resume.pt`` and the replay chunks it lists; returns what it wrote. ``mean_return``: the
        checkpoint window's (by default, of the last ``checkpoint_every`` episodes)."""
        t = self.cfg.trainer
        if mean_return is None:
            mean_return = self.recent_mean_return(t.checkpoint_every)
        learner = self._synced_learner()
        manifest = learner.save_replay(self.run_dir, self._replay_manifest) if t.save_replay else None
        saved = self._training_state(mean_return, manifest).to_dict()
        try:
            checkpoint.save(self.run_dir / checkpoint.RESUME_FILE, saved)
        except BaseException:  # the saved resume.pt still lists the chunks before these: only those stay
            checkpoint.prune_replay(self.run_dir, self._replay_manifest)
            raise
        learner.mark_saved()
        self._replay_manifest = manifest
        checkpoint.prune_replay(self.run_dir, manifest)
        return saved

    def _resume_if_possible(self, state: TrainingState | None) -> None:
        """Continue from ``resume.pt`` (``state``); failing that, from the latest policy checkpoint, saying what is
        lost.

        Everything is read onto the CPU first (RNG states must stay CPU tensors) and then copied
        onto the training device, so a run trained on a GPU resumes on a CPU and vice versa.
        """
        now = to_toml_dict(self.cfg)
        checkpoint.remove_stale_files(self.run_dir, state.replay if state else None)
        if state is not None:
            checkpoint.check_compatible(state.config, now, self.run_dir)
            restored = checkpoint.restore_missing_checkpoint(self.run_dir, state.to_dict())
            replay_note = self._resume_from(state)
            self.resume_note = f"resumed at episode {self.episode} from {checkpoint.RESUME_FILE} {replay_note}"
            if restored is not None:
                self.resume_note += f" (re-wrote {restored.name}, which a stop had cut off)"
            return
        latest = checkpoint.latest_checkpoint(self.run_dir)
        if latest is not None:
            policy = checkpoint.load(latest)
            checkpoint.check_compatible(policy["config"], now, self.run_dir)
            self._restart_from_policy(policy)
            self.resume_note = (
                f"resumed at episode {self.episode} from {latest.name} only: {checkpoint.RESUME_FILE} is missing, so the "
                "optimizer state, replay memory, random-number state and episode history were lost (mean returns in "
                f"metrics.json cover the new episodes only); the next {self.cfg.trainer.warmup_steps:,} steps refill "
                "the replay memory before learning resumes"
            )

    def _resume_from(self, state: TrainingState) -> str:
        """Take up ``state`` where it left off: the inverse of :meth:`_training_state`. Returns what the run output
        says about the replay memory."""
        t = self.cfg.trainer
        self.episode, self.env_steps, self.wall_seconds = state.episode, state.env_steps, state.wall_seconds
        self.updates = state.learner.updates
        self.q.load_state_dict(state.acting_weights or state.learner.weights)
        self.stored, missing = self.learner.restore(state.learner, state.replay, self.run_dir)
        self.returns, self.lengths = state.returns, state.lengths
        self._learn_credit = state.learn_credit
        if state.exploration:  # sized to a time limit once, or set by a warm start: kept for the rest of the run
            self.exploration = state.exploration
            self._schedule = self._sized_schedule(self.exploration)
        self.games.set_random_state(state.python_random)
        self.rng.bit_generator.state = state.numpy_random
        torch.set_rng_state(state.torch_random)
        if state.cuda_random and self.device.type == "cuda" and len(state.cuda_random) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state.cuda_random)
        if missing is None:
            self._replay_manifest = state.replay
            self._learn_from = state.learn_from
            return f"with its replay memory ({self.stored:,} transitions)"
        self._learn_from = self.env_steps + t.warmup_steps
        return f"without replay memory ({missing}): the next {t.warmup_steps:,} steps refill it before learning resumes"

    def _restart_from_policy(self, policy: dict[str, Any]) -> None:
        """Continue from a policy checkpoint alone (see :data:`~retro_gamer.run.checkpoint.POLICY_KEYS`): its weights
        and counters; the replay memory refills before learning resumes."""
        self.episode, self.env_steps = int(policy["episode"]), int(policy["env_steps"])
        self.updates = int(policy.get("updates", 0))
        self.wall_seconds = float(policy["wall_seconds"])
        self.q.load_state_dict(policy["weights"])
        self.learner.restart_from(policy["weights"], self.updates)
        self._learn_from = self.env_steps + self.cfg.trainer.warmup_steps
