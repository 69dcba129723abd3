"""A run directory: resolve the game against its code, write ``config.toml``, then train.

Both entry points (``python -m retro_gamer.train`` and ``retro-gamer train DIR``) end here, so
they share one engine and produce the same files.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from retro_gamer import checkpoint
from retro_gamer.callbacks import METRICS_FILE, Callback, ConsoleProgress, RunLog
from retro_gamer.config import (
    CONFIG_FILE, RunConfig, check_settings, from_toml_dict, read_config, to_toml_dict, write_config,
)
from retro_gamer.errors import ConfigError
from retro_gamer.env import check_board_size, discover_characters, ends_by_itself, rules_of
from retro_gamer.games import GameDescription, check_against_game, game_factory, is_model_uri, portable, rebase
from retro_gamer.runlock import run_lock


def resolve_game(desc: GameDescription, source: str, base_dir: Path, exploration_turns: int, seed: int) -> GameDescription:
    """Check the description against a real game and fill in what is discovered (board size, characters, the
    version of its rules)."""
    factory = game_factory(desc, base_dir)
    game = factory()
    check_against_game(desc, game, source)
    characters = desc.character_set
    if characters is None:
        characters = discover_characters(factory, desc.actions, exploration_turns, seed)
    return replace(desc, board_size=tuple(game.board_size), character_set=list(characters), rules=rules_of(factory))


def prepare_run(cfg: RunConfig, run_dir: Path, source: str, base_dir: Path | None = None) -> RunConfig:
    """Resolve ``cfg`` for ``run_dir`` and write its ``config.toml``.

    Relative game paths in ``cfg`` are relative to ``base_dir`` (the caller's folder) and are
    rewritten relative to the run directory, so the run can be moved together with its game.
    Nothing is written until the game has been checked, and an existing run with checkpoints is
    checked too: an incompatible change is refused before anything on disk changes.
    """
    run_dir = Path(run_dir)
    base_dir = base_dir or Path.cwd()
    game = replace(cfg.game, factory=rebase(portable(cfg.game.factory, base_dir), base_dir, run_dir))
    if game.opponent and not is_model_uri(game.opponent):  # a run directory, kept relative to this one
        game = replace(game, opponent=os.path.relpath((base_dir / game.opponent).resolve(), run_dir.resolve()))
    check_settings(cfg, "settings")
    previous = previous_config(run_dir)
    if previous is not None and game.character_set is None:
        game = replace(game, character_set=previous.game.character_set)  # keep what discovery found
    t = cfg.trainer
    resolved = replace(cfg, game=resolve_game(game, source, run_dir, t.exploration_turns, t.seed))
    if previous is None:
        warn_if_endless(resolved.game, run_dir, t.seed)
    with run_lock(run_dir):
        if previous is not None and has_training_state(run_dir):
            checkpoint.check_compatible(to_toml_dict(previous), to_toml_dict(resolved), run_dir)
            # the rules it learned under stay on record, so training refuses to go on under others
            resolved = replace(resolved, game=replace(resolved.game, rules=previous.game.rules))
        write_config(resolved, run_dir)
    return resolved


def check_game(cfg: RunConfig, run_dir: Path) -> None:
    """The run's game as its code is now, against its config.toml: the keys it names exist and the board is the
    size the network reads. A session checks this before it writes anything."""
    game = game_factory(cfg.game, run_dir)()
    check_against_game(cfg.game, game, str(Path(run_dir) / CONFIG_FILE))
    check_board_size(game, cfg.game, "this run was set up for")


ENDLESS_CHECK_TURNS = 3_000


def warn_if_endless(desc: GameDescription, base_dir: Path, seed: int) -> None:
    """A new run on a game that random play never ends: every episode will run to ``max_turns``."""
    turns = min(desc.max_turns, ENDLESS_CHECK_TURNS)
    if not ends_by_itself(game_factory(desc, base_dir), desc.actions, turns, seed):
        print(f"warning: in {turns:,} turns of random play the game never ended by itself (game.end() was never "
              f"called), so training will cut every episode at max_turns = {desc.max_turns:,} turns. If the player "
              "can lose or win, check that the game calls game.end() then; if it is meant to go on, set max_turns "
              "in its description to the episode length you want.", file=sys.stderr)


def previous_config(run_dir: Path) -> RunConfig | None:
    """What ``run_dir`` was set up with: its ``config.toml``, or, when that is damaged but training
    state exists, the copy of the config the newest checkpoint carries (so recreating a damaged
    config still checks it against what the weights were trained with)."""
    if not (run_dir / CONFIG_FILE).is_file() and not has_training_state(run_dir):
        return None
    try:
        return read_config(run_dir)
    except ConfigError:
        saved = checkpoint.list_checkpoints(run_dir)
        newest = run_dir / checkpoint.RESUME_FILE if (run_dir / checkpoint.RESUME_FILE).is_file() else (saved[-1][1] if saved else None)
        if newest is None:
            return None  # nothing trained yet: the damaged file can simply be replaced
        return from_toml_dict(checkpoint.load(newest)["config"], f"the config saved in {newest}")


def has_training_state(run_dir: Path) -> bool:
    return (Path(run_dir) / checkpoint.RESUME_FILE).is_file() or bool(checkpoint.list_checkpoints(run_dir))


def progress_so_far(run_dir: Path) -> tuple[int, int]:
    """``(episodes, env steps)`` the run has trained: its resume state's, else its latest checkpoint's, else none."""
    resume = Path(run_dir) / checkpoint.RESUME_FILE
    newest = resume if resume.is_file() else checkpoint.latest_checkpoint(run_dir)
    if newest is None:
        return 0, 0
    state = checkpoint.load(newest)
    return int(state["episode"]), int(state["env_steps"])


def budget_reached(cfg: RunConfig, episodes: int, env_steps: int) -> str | None:
    """The budget (``episodes`` or ``total_env_steps``) a run with these counts has used up, or None."""
    t = cfg.trainer
    if episodes >= t.episodes:
        return "episodes"
    if t.total_env_steps is not None and env_steps >= t.total_env_steps:
        return "total_env_steps"
    return None


def nothing_to_do(run_dir: Path, cfg: RunConfig) -> str | None:
    """Why a run has already trained all its budget allows, or None: then training would only rewrite what is saved."""
    episodes, env_steps = progress_so_far(run_dir)
    t = cfg.trainer
    reached = budget_reached(cfg, episodes, env_steps)
    if reached == "episodes":
        return (f"{run_dir} already has {episodes:,} episodes (trainer.episodes = {t.episodes:,}): nothing to do. Raise "
                "trainer.episodes (or `retro-gamer train RUN --episodes N`) to train further.")
    if reached == "total_env_steps":
        return (f"{run_dir} already has {env_steps:,} env steps (trainer.total_env_steps = {t.total_env_steps:,}): nothing "
                "to do. Raise trainer.total_env_steps (or `retro-gamer train RUN --steps N`) to train further.")
    return None


def train_run(run_dir: Path, cfg: RunConfig | None = None, callbacks: list[Callback] | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run in ``run_dir``; ``cfg`` defaults to its ``config.toml``. A run that has trained all
    its budget allows changes nothing on disk or in tracking: its saved totals come back, ``stopped_by`` saying so."""
    from retro_gamer.trainer import DQNTrainer  # torch is imported only when training

    with run_lock(run_dir):
        cfg = cfg or read_config(run_dir)
        done = nothing_to_do(run_dir, cfg)
        if done is not None:
            print(done, flush=True)
            return {**saved_metrics(run_dir), "stopped_by": "nothing_to_do", "status": "finished"}
        hooks: list[Callback] = [RunLog(run_dir)]
        if progress:
            hooks.append(ConsoleProgress())
        if cfg.tracking.enabled:
            from retro_gamer.tracking import MlflowTracking

            hooks.append(MlflowTracking(cfg, run_dir))
        trainer = DQNTrainer(cfg, run_dir, hooks + list(callbacks or []))
        return trainer.train()


def saved_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's ``metrics.json`` (its totals), or what its counters say where that file is missing or damaged."""
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        episodes, env_steps = progress_so_far(run_dir)
        return {"episodes": episodes, "env_steps": env_steps, "env_steps_per_s": 0.0, "mean_return": None}


def stopped_at_once_message(resume_command: str) -> str:
    """A second Ctrl+C: one line, no traceback."""
    return f"Stopped at once; the files saved before are intact. Resume with: {resume_command}"


def finish_message(summary: dict[str, Any], run_dir: Path, resume_command: str) -> str:
    """What both entry points print when training stops."""
    if summary["stopped_by"] == "nothing_to_do":
        return f"Nothing trained; {run_dir} is as it was."
    lines = []
    if summary["stopped_by"] == "interrupted":
        lines.append(f"Stopped at episode {summary['episodes']}; checkpoint saved. Resume with: {resume_command}")
    lines.append(f"Trained {summary['episodes']} episodes ({summary['env_steps']:,} env steps, "
                 f"{summary['env_steps_per_s']:,.0f}/s). Results in {run_dir}")
    return "\n".join(lines)
