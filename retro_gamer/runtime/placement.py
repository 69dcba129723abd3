"""Where a run learns and plays its games: one decision, made when the run is created and kept in its
``config.toml`` (``[training] learner_process`` and ``game_process``), so every start of the run uses the
same processes and its numbers do not depend on how busy the machine was that day.

The rule (:func:`choose_placement`) reads only settings and facts that do not change while a machine is
busy: the cores this process may use, whether torch sees an accelerator, the network's kind, and how many
agents the game has (retro's ``Game.step`` visits every agent each turn, so a game with many of them has
slow turns). Explicit settings always win. Each start of the run reads that decision back as a
:class:`Placement` (:func:`run_placement`), which the trainer follows and never changes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retro_gamer.config.schema import ModelKind

if TYPE_CHECKING:
    import torch

    from retro_gamer.config.schema import RunConfig, TrainerConfig


CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """How many CPU cores this process may use: its affinity mask (``taskset``, a scheduler's CPU set), capped
    by a cgroup CPU quota (a container's ``--cpus``), at least 1. ``os.cpu_count()`` counts the machine's
    cores instead, so in a 1-CPU container two busy helper processes would share one core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs' worth of time the cgroup may use per period, or None without a limit (cgroup v2, then v1)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def _accelerator() -> str | None:
    """The accelerator torch sees (``cuda``, then ``mps``), or None."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None


def choose_placement(
    trainer: TrainerConfig,
    model_kind: str,
    agents: int,
    busy_game_agents: int,
    cores: int | None = None,
    accelerator: bool | None = None,
) -> tuple[bool, bool, str]:
    """``(learner_process, game_process, why)`` for a new run.

    A second core goes to learning first whenever learning runs on the CPU (``trainer.device=cpu``, an MLP
    under ``auto``, or no accelerator): learning in its own process overlaps the games. Where learning stays in
    this process (an accelerator, ``trainer.learner_process=false``), the games get a process of their own
    when the game has at least ``busy_game_agents`` agents, whose turns are slow enough to be worth it.
    """
    cores = usable_cores() if cores is None else cores
    learner, games = trainer.learner_process, trainer.game_process
    if cores < 2:
        why = "one usable CPU core, so learning and the games share this process"
        return bool(learner), bool(games), why if learner is None and games is None else why + " (as set)"
    reasons = []
    if learner is None:
        on_cpu = trainer.device.startswith("cpu") or (
            trainer.device == "auto"
            and (model_kind == "mlp" or not (_accelerator() is not None if accelerator is None else accelerator))
        )
        learner = on_cpu and games is not True
        reasons.append(
            f"learning in a second process on the second of {cores} usable cores"
            if learner
            else "learning in this process"
            + (": the games' process has the second core" if games else ": it has the accelerator")
        )
    else:
        reasons.append(f"learning {'in a second process' if learner else 'in this process'} (trainer.learner_process)")
    if games is None:
        games = not learner and agents >= busy_game_agents
        if learner:
            reasons.append("the games in this process: the second core learns")
        else:
            reasons.append(
                f"the games in {'a second' if games else 'this'} process: the game has {agents} agents "
                f"({'at least' if games else 'fewer than'} {busy_game_agents}, the rule for slow turns)"
            )
    else:
        reasons.append(f"the games {'in a second' if games else 'in this'} process (trainer.game_process)")
    return learner, games, "; ".join(reasons)


@dataclass(frozen=True)
class Placement:
    """Where a run learns and plays for one start, as :func:`run_placement` decided it."""

    device: torch.device  # where learning runs and actions are chosen
    learner_process: bool  # learning in a second process
    game_process: bool  # the games in a second process
    torch_threads: int  # torch's threads in the trainer's process; 0 leaves torch's own choice
    reason: str  # why these processes, for the run's first line


def run_placement(
    cfg: RunConfig, started_with: tuple[bool, bool] | None, agents: Callable[[], int], busy_game_agents: int
) -> Placement:
    """Where a starting run learns and plays: the processes as its ``config.toml`` says; for a run created before
    that was written there, as its ``resume.pt`` says it did when it started (``started_with``: its
    ``(learner_process, game_process)``; torch's thread count changes the last bits of its sums, so a new choice
    would break exact resume); else chosen now by :func:`choose_placement` (``agents`` counts the game's agents,
    called only then). The device follows ``trainer.device`` (:func:`training_device`); with a second process
    at work, torch keeps to one thread (the other core plays the games, or learns) unless ``trainer.threads``
    says otherwise."""
    t = cfg.trainer
    if t.learner_process is not None and t.game_process is not None:
        learner, games = t.learner_process, t.game_process
        reason = (
            f"learning {'in a second' if learner else 'in this'} process, "
            f"the games {'in a second' if games else 'in this'} process (config.toml)"
        )
    elif started_with is not None:
        learner = t.learner_process if t.learner_process is not None else started_with[0]
        games = t.game_process if t.game_process is not None else started_with[1]
        reason = "as when this run started (its resume.pt)"
    else:
        learner, games, reason = choose_placement(t, ModelKind(cfg.model.kind).value, agents(), busy_game_agents)
    threads = t.threads if t.threads > 0 else (1 if learner or games else 0)
    return Placement(training_device(cfg, learner), learner, games, threads, reason)


def training_device(cfg: RunConfig, learner_process: bool) -> torch.device:
    """The device ``trainer.device`` names; ``auto`` is the CPU for an MLP that learns in its own process
    (its gradient step is too small to keep a GPU busy, and a second CPU process overlaps the games), else
    cuda, then mps, then the CPU."""
    import torch

    t = cfg.trainer
    if t.device != "auto":
        return torch.device(t.device)
    if ModelKind(cfg.model.kind) is ModelKind.mlp and learner_process:
        return torch.device("cpu")
    return torch.device(_accelerator() or "cpu")
