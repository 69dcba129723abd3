"""Warm starts: a new run that continues where another run of the same network stopped.

An adversarial side's generation N learns against a new pool of opponents, but what generation N-1 learned
(how to move, what the board means) still holds. Starting it from random weights, a random warm-up and a full
epsilon decay spends its whole budget relearning that, so every generation hits the same ceiling. A warm
start instead hands the new run the previous run's whole training state, as if it had been resumed:
weights, target network, optimizer, counters (episodes, env steps, gradient updates, so budgets, checkpoint
names and MLflow steps continue), return and length history, and (``keep_replay``) the replay memory. What
changes is the opponents, so exploration restarts briefly: epsilon jumps to ``epsilon`` and falls back to
``trainer.epsilon_end`` over ``over_steps`` env steps, instead of a fresh warm-up and decay.

It works by writing the new run's ``resume.pt`` (a :class:`~retro_gamer.run.training_state.TrainingState`): the
trainer then resumes it like any stopped run. The new run is a run of its own: its config (the seed, the opponent,
the budget), its own checkpoints and, when tracked, its own MLflow run, whose metrics continue the previous run's
steps. The random-number states are not carried over but seeded from the new run's ``trainer.seed``, so each
generation's seed decides its games. The previous run is only read: in a pipeline it is another stage's output.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retro_gamer.config.schema import CONFIG_FILE, RunConfig, to_toml_dict
from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import budget_reached, has_training_state
from retro_gamer.run.lock import run_lock
from retro_gamer.run.training_state import TrainingState


def warm_start(
    previous_run: Path, run_dir: Path, cfg: RunConfig, *, epsilon: float, over_steps: int, keep_replay: bool = True
) -> str:
    """Make ``run_dir`` (set up by :func:`~retro_gamer.run.directory.prepare_run` with ``cfg``, not trained yet) continue
    ``previous_run``'s training state when :func:`~retro_gamer.launch.train_run` trains it; returns a one-line note
    of what it continues. See the module docstring for what carries over and why."""
    previous_run, run_dir = Path(previous_run), Path(run_dir)
    if not 0 <= epsilon <= 1 or over_steps < 0:
        raise RetroGamerError(
            f"A warm start needs an epsilon from 0 to 1 and 0 or more steps to lower it over, "
            f"not epsilon {epsilon!r} over {over_steps!r} steps."
        )
    source = previous_run / checkpoint.RESUME_FILE
    if not source.is_file():
        raise RetroGamerError(
            f"Cannot warm-start {run_dir} from {previous_run}: it has no {checkpoint.RESUME_FILE}, which holds the "
            "optimizer, counters and replay memory to continue. Train the previous run (or let it finish) first, "
            "with trainer.save_replay as you like: resume.pt is written at every checkpoint."
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise RetroGamerError(
            f"Cannot warm-start {run_dir}: it has no {CONFIG_FILE}. Set it up with prepare_run "
            "(or `retro-gamer create`) first, then warm-start it before training it."
        )
    with run_lock(run_dir, "warm start"):
        if has_training_state(run_dir):
            raise RetroGamerError(
                f"Cannot warm-start {run_dir}: it has trained already ({checkpoint.RESUME_FILE} or checkpoints), and a "
                f"warm start would replace that. Warm-start a new run directory, or delete {run_dir} and set it up again."
            )
        state = TrainingState.from_dict(checkpoint.load(source))
        _check_continuable(state, cfg, previous_run, run_dir)
        replay = _carried_replay(state.replay, cfg, previous_run, run_dir, keep_replay)
        seed = cfg.trainer.seed
        state = dataclasses.replace(
            state,
            config=to_toml_dict(cfg),
            replay=replay,
            exploration={
                "warm_start_from": Path(os.path.relpath(previous_run.resolve(), run_dir.resolve())).as_posix(),
                "decided_at_env_step": state.env_steps,
                "from_epsilon": float(epsilon),
                "epsilon_end_at_env_step": state.env_steps + int(over_steps),
                "replay_transitions": int(replay["size"]) if replay else 0,
            },
            # seeded as a new run with this seed starts: the games' Python random, the trainer's numpy and torch draws
            python_random=random.Random(seed).getstate(),
            numpy_random=np.random.default_rng(seed).bit_generator.state,
            torch_random=torch.Generator().manual_seed(seed).get_state(),
            cuda_random=[],  # the trainer seeds CUDA from trainer.seed
        )
        saved = state.to_dict()
        checkpoint.save(run_dir / checkpoint.RESUME_FILE, saved)
        checkpoint.write_policy_checkpoint(run_dir, saved)  # where this run starts, under the counters it continues
    return _note(previous_run, state, cfg, epsilon, over_steps, replay, keep_replay)


def _check_continuable(state: TrainingState, cfg: RunConfig, previous_run: Path, run_dir: Path) -> None:
    """The previous weights fit the new run's network and observation, were trained under the same rules of the
    game, and the new run's budget leaves something to train."""
    fix = f"Make {run_dir}'s settings match, or train it from scratch (no warm start)."
    problems = checkpoint.compatibility_problems(state.config, to_toml_dict(cfg))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise IncompatibleRunError(
            f"Cannot warm-start {run_dir} from {previous_run}: the saved weights cannot follow "
            f"these changes.\n{listing}\n{fix}"
        )
    was = state.config.get("metadata", {}).get("rules")
    if was != cfg.game.rules:
        raise IncompatibleRunError(
            f"Cannot warm-start {run_dir} from {previous_run}: the previous run learned the "
            f"game's rules version {was}, this run plays version {cfg.game.rules}, so its "
            f"weights would play the wrong game. {fix}"
        )
    episodes, steps = state.episode, state.env_steps
    reached = budget_reached(cfg, episodes, steps)
    if reached == "total_env_steps":
        raise RetroGamerError(
            f"Cannot warm-start {run_dir}: trainer.total_env_steps = {cfg.trainer.total_env_steps:,} is not above the "
            f"{steps:,} env steps {previous_run} has trained, and budgets count the steps of both runs. Set it to "
            f"{steps:,} plus the steps this run should train."
        )
    if reached == "episodes":
        raise RetroGamerError(
            f"Cannot warm-start {run_dir}: trainer.episodes = {cfg.trainer.episodes:,} is not above the {episodes:,} "
            f"episodes {previous_run} has trained, and budgets count the episodes of both runs. Raise it, or budget "
            "the run in env steps (trainer.total_env_steps)."
        )


def _carried_replay(
    manifest: dict[str, Any] | None, cfg: RunConfig, previous_run: Path, run_dir: Path, keep_replay: bool
) -> dict[str, Any] | None:
    """The replay manifest for the new run from the previous run's (``manifest``), its chunk files copied into it;
    ``None`` drops the memory (the trainer then refills ``trainer.warmup_steps`` before learning)."""
    if not keep_replay or manifest is None:
        return None
    if cfg.trainer.prioritized and "priority" not in manifest:
        raise RetroGamerError(
            f"Cannot carry {previous_run}'s replay memory into {run_dir}: it was kept without priorities "
            "(trainer.prioritized = false) and this run samples by priority. Warm-start without the replay memory, "
            "or keep trainer.prioritized as the previous run had it."
        )
    for name in manifest["chunks"]:
        chunk = previous_run / checkpoint.REPLAY_DIR / name
        if not chunk.is_file():
            raise RetroGamerError(
                f"Cannot carry {previous_run}'s replay memory into {run_dir}: {chunk}, which its "
                f"{checkpoint.RESUME_FILE} lists, is missing. Warm-start without the replay memory, or restore "
                f"{previous_run} (for a pipeline stage: `dvc checkout`)."
            )
        target = run_dir / checkpoint.REPLAY_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chunk, target)
    # sampling starts from the new seed, as a new run's memory would
    return {**manifest, "rng": np.random.default_rng(cfg.trainer.seed).bit_generator.state}


def _note(
    previous_run: Path,
    state: TrainingState,
    cfg: RunConfig,
    epsilon: float,
    over_steps: int,
    replay: dict[str, Any] | None,
    keep_replay: bool,
) -> str:
    if replay is not None:
        memory = f"replay memory {int(replay['size']):,} transitions"
    else:
        why = "dropped" if not keep_replay else f"none saved in {previous_run.name}"
        memory = f"replay memory {why}: the first {cfg.trainer.warmup_steps:,} steps refill it"
    return (
        f"Warm start: continues {previous_run.name} at env step {state.env_steps:,}, episode "
        f"{state.episode:,}; epsilon {epsilon:g} → {cfg.trainer.epsilon_end:g} over {over_steps:,} steps; "
        f"{memory}."
    )
