"""A Stable-Baselines3 run on a retro game, recorded in MLflow as retro-gamer records its own runs.

Pass :class:`MlflowCallback` to ``model.learn(callback=...)`` for a model on a ``retro_gamer/…`` Gymnasium
environment, and the MLflow UI shows the run beside retro-gamer's runs of the same game, column for column:

* the same store and experiment: ``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else ``mlruns/`` of the project
  the current folder (``base_dir``) belongs to (:func:`retro_gamer.tracking.store.resolve_uri`); the experiment is
  ``tracking.experiment``, else the game's name;
* params: the game's description as ``game.*`` (the names retro-gamer's runs use), the tracking settings as
  ``tracking.*``, and SB3's algorithm and hyperparameters as ``sb3.*``;
* per-episode metrics on retro-gamer's step axis, the episode number (1, 2, … in the order episodes end, over all
  of SB3's environments): ``episode_return``, ``episode_length`` and, for DQN, ``epsilon``; every
  ``checkpoint_every`` episodes (retro-gamer's default) the window metrics ``window_mean_return``,
  ``window_mean_length``, ``env_steps_per_s``, ``env_steps`` and ``loss`` (when SB3 has logged one), stepped at
  the window's last episode;
* at those checkpoints, a greedy episode of the model as the same HTML replay and transcript
  (``replays/ep_NNNN.html``, :mod:`retro_gamer.tracking.recording`), on the rule retro-gamer follows
  (``tracking.replay_every``; unset, as often as 1 % of the training time allows), and one at the end;
* the same failure rule: a store that stops answering warns once and never stops training.

The replays are played on a second environment made from the training one's Gymnasium spec (the id and its
arguments), so training never loses a step to them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from retro_gamer.extras import require, require_extra

require_extra("sb3", "Tracking a Stable-Baselines3 run in MLflow (retro_gamer.adapters.sb3_tracking)")
require("mlflow", "train", "Tracking a Stable-Baselines3 run in MLflow (retro_gamer.adapters.sb3_tracking)")

import numpy as np  # noqa: E402  (after the checks above, so a missing extra is one line naming it)
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from retro_gamer.config.schema import TrackingConfig, TrainerConfig  # noqa: E402
from retro_gamer.errors import RetroGamerError  # noqa: E402
from retro_gamer.run.checkpoint import checkpoint_name  # noqa: E402
from retro_gamer.tracking import store  # noqa: E402
from retro_gamer.tracking.mlflow_run import (  # noqa: E402
    MetricSender,
    StoreWriter,
    experiment_name,
    flatten_params,
    log_recording,
    replay_due,
    source_tags,
)
from retro_gamer.tracking.recording import Recording, record_game  # noqa: E402

# SB3's hyperparameters logged as sb3.NAME, where the algorithm has them (schedules are logged by their value now)
HYPERPARAMETERS = (
    "learning_rate",
    "gamma",
    "batch_size",
    "buffer_size",
    "learning_starts",
    "train_freq",
    "gradient_steps",
    "target_update_interval",
    "exploration_initial_eps",
    "exploration_final_eps",
    "exploration_fraction",
    "n_steps",
    "n_epochs",
    "gae_lambda",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "n_envs",
    "seed",
    "policy_kwargs",
)


class MlflowCallback(StoreWriter, BaseCallback):
    """Records an SB3 ``learn`` on a retro game in MLflow (see the module docstring).

    ``tracking``: retro-gamer's tracking settings (``uri``, ``experiment``, ``role``, ``tags``, ``replay_every``);
    ``checkpoint_every``: episodes between window metrics and replays; ``run_name``: default ``sb3-ALGORITHM``;
    ``base_dir``: the folder whose project holds the default store (default: the current folder); ``seed``: the
    replays' game seed, as retro-gamer's replays use ``trainer.seed``.
    """

    KEPT = "SB3's own logs and model are the only copy."

    def __init__(
        self,
        tracking: TrackingConfig | None = None,
        checkpoint_every: int = TrainerConfig.checkpoint_every,
        run_name: str | None = None,
        base_dir: str | Path | None = None,
        seed: int = TrainerConfig.seed,
        stream: Any = None,
        verbose: int = 0,
    ):
        self.tracking = tracking or TrackingConfig()
        self.base_dir = Path(base_dir or Path.cwd()).resolve()
        StoreWriter.__init__(self, store.resolve_uri(self.tracking.uri, self.base_dir), stream)
        BaseCallback.__init__(self, verbose)
        if checkpoint_every < 1:
            raise RetroGamerError(f"checkpoint_every must be 1 or more episodes, got {checkpoint_every}.")
        self.checkpoint_every = checkpoint_every
        self.run_name = run_name
        self.seed = seed
        self.episode = 0  # episodes ended so far, over all environments: the metrics' step
        self.replay_env: Any = None
        self._returns: np.ndarray = np.zeros(0)
        self._lengths: np.ndarray = np.zeros(0, dtype=np.int64)
        self._window: list[tuple[float, int]] = []
        self._window_start = (0.0, 0)  # (perf_counter, env steps) when the window began
        self._checkpoints_seen = 0
        self._started = 0.0
        self._replay_seconds = 0.0
        self._replayed = -1  # the episode of the last replay
        self._ended = False

    # --- SB3's hooks --------------------------------------------------------------------------
    def _on_training_start(self) -> None:
        self.replay_env = replay_environment(self.training_env)
        n = self.training_env.num_envs
        self._returns, self._lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        self._started = time.perf_counter()
        self._window_start = (self._started, self.num_timesteps)
        self._enter_settings()  # until the end of training
        self._safely("opening the store", self._start)

    def _start(self) -> None:
        from mlflow.entities import Param

        desc = self.replay_env.description
        self._open_experiment(experiment_name(self.tracking.experiment, desc))
        algorithm = type(self.model).__name__
        tags = {
            "game": desc.name or desc.factory,
            "role": self.tracking.role,
            "trainer": f"stable-baselines3 {algorithm}",
            "device": str(self.model.device),
            "sb3_version": _sb3_version(),
            **source_tags(desc.factory, self.base_dir),
            **{str(k): str(v) for k, v in self.tracking.tags.items()},
        }
        run = self.client.create_run(
            self.experiment_id, run_name=self.run_name or f"sb3-{algorithm.lower()}", tags=tags
        )
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in self.params().items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self._sender = MetricSender(self._send)

    def params(self) -> dict[str, str]:
        """``game.*`` and ``tracking.*`` as retro-gamer's runs name them, and ``sb3.*``: the algorithm, its policy,
        its hyperparameters and the step budget ``learn`` was given."""
        sb3: dict[str, Any] = {
            "algorithm": type(self.model).__name__,
            "policy": type(self.model.policy).__name__,
            "total_timesteps": self.locals.get("total_timesteps"),
        }
        for name in HYPERPARAMETERS:
            value = getattr(self.model, name, None)
            if callable(value):
                value = value(self.model._current_progress_remaining)  # a schedule: its value now
            if value is not None:
                sb3[name] = value
        return flatten_params(
            {
                "game": asdict(self.replay_env.description),
                "tracking": asdict(self.tracking),
                "sb3": sb3,
            }
        )

    def _on_step(self) -> bool:
        from mlflow.entities import Metric

        rewards, dones = self.locals["rewards"], self.locals["dones"]
        self._returns += rewards
        self._lengths += 1
        for i in np.flatnonzero(dones):
            self.episode += 1
            episode_return, length = float(self._returns[i]), int(self._lengths[i])
            self._returns[i], self._lengths[i] = 0.0, 0
            self._window.append((episode_return, length))
            now = int(time.time() * 1000)
            self._metrics += [
                Metric("episode_return", episode_return, now, self.episode),
                Metric("episode_length", float(length), now, self.episode),
            ]
            epsilon = getattr(self.model, "exploration_rate", None)  # DQN's; PPO explores by sampling
            if epsilon is not None:
                self._metrics.append(Metric("epsilon", float(epsilon), now, self.episode))
            if self.episode % self.checkpoint_every == 0:
                self._checkpoint()
        return True

    def _checkpoint(self) -> None:
        """The window's metrics at its last episode, as retro-gamer's checkpoints log them, and maybe a replay."""
        from mlflow.entities import Metric

        now_s = time.perf_counter()
        since, steps_then = self._window_start
        returns, lengths = zip(*self._window)
        loss = self.model.logger.name_to_value.get("train/loss")  # SB3's latest, when it has not been dumped yet
        now = int(time.time() * 1000)
        self._metrics += [
            Metric(key, float(value), now, self.episode)
            for key, value in (
                ("window_mean_return", np.mean(returns)),
                ("window_mean_length", np.mean(lengths)),
                ("env_steps_per_s", (self.num_timesteps - steps_then) / max(now_s - since, 1e-9)),
                ("env_steps", self.num_timesteps),
                *((("loss", loss),) if loss is not None else ()),
            )
        ]
        self._flush()
        self._window = []
        self._checkpoints_seen += 1
        if replay_due(self.tracking.replay_every, self._checkpoints_seen, self._replay_seconds, now_s - self._started):
            self._safely("logging a replay", self._log_replay, artifacts=2)
        self._window_start = (time.perf_counter(), self.num_timesteps)  # a replay's time is not training's

    def _log_replay(self) -> None:
        started = time.perf_counter()
        self._replayed = self.episode
        try:
            name = Path(checkpoint_name(self.episode)).stem
            log_recording(self.client, self.run_id, self.record(name), name)
        finally:
            self._replay_seconds += time.perf_counter() - started

    def record(self, name: str) -> Recording:
        """One greedy episode of the model on the replay environment, reset with ``seed``."""
        env, model = self.replay_env, self.model
        observation: list[Any] = []

        def start() -> Any:
            observation[:] = [env.reset(seed=self.seed)[0]]
            return env.game_env.game

        def play_turn(game: Any) -> str | None:
            action = int(model.predict(observation[0], deterministic=True)[0])
            observation[0] = env.step(action)[0]
            return env.keys[action]

        desc = env.description
        title = f"{desc.name or desc.factory} — sb3 {type(model).__name__} {name}"
        return record_game(desc, start, play_turn, title)

    def _on_training_end(self) -> None:
        with self._environment:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if self.run_id and self.episode != self._replayed and self.tracking.replay_every != 0:
            self._safely("logging the final replay", self._log_replay, artifacts=2)
        self._stop_sending()
        ended = self._terminate("finished") if self.run_id else False
        self._report("finished", ended)

    # --- a learn left by an exception -----------------------------------------------------------
    def __enter__(self) -> MlflowCallback:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        """SB3 calls :meth:`_on_training_end` only when ``learn`` returns, so a run it left by an exception would
        stay RUNNING: ``with MlflowCallback() as tracking: model.learn(..., callback=tracking)`` ends it KILLED
        (Ctrl+C) or FAILED here, with what was sent so far."""
        if kind is None or self._ended:
            return
        self._ended = True
        status = "interrupted" if issubclass(kind, KeyboardInterrupt) else "failed"
        with self._environment:
            self._stop_sending()
            if self.run_id:
                self._report(status, self._terminate(status))


def replay_environment(training_env: Any) -> Any:
    """A second environment of the game the model trains on, made from the training environment's Gymnasium spec
    (its id and arguments), for the replays: playing one on a training environment would cut an episode short."""
    import gymnasium

    from retro_gamer.adapters.gymnasium_env import RetroGameEnv

    spec = training_env.get_attr("spec", [0])[0]  # the outermost wrapper's: the id, its arguments, the wrappers
    env = gymnasium.make(replace(spec, additional_wrappers=())).unwrapped if spec is not None else None
    if not isinstance(env, RetroGameEnv):
        raise RetroGamerError(
            "MlflowCallback records SB3 on retro games: make the environment with gymnasium.make('retro_gamer/…') "
            "(for example retro_gamer/Snake-v0, or retro_gamer/Game-v0 with game=SPEC)."
        )
    return env


def _sb3_version() -> str:
    import stable_baselines3

    return str(stable_baselines3.__version__)
