"""A run directory: resolve the game against its code, write ``config.toml``, and say how far it has trained.

Both entry points (``python -m retro_gamer.train`` and ``retro-gamer train DIR``) prepare runs here and train them
with :mod:`retro_gamer.launch`, so they share one engine and produce the same files.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from retro_gamer.config.schema import (
    CONFIG_FILE,
    RunConfig,
    check_settings,
    from_toml_dict,
    read_config,
    to_toml_dict,
    write_config,
)
from retro_gamer.env.environment import check_board_size, ends_by_itself, resolve_game
from retro_gamer.errors import ConfigError
from retro_gamer.games import GameDescription, check_against_game, game_factory, is_model_uri, portable, rebase
from retro_gamer.run import checkpoint
from retro_gamer.run.lock import run_lock


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
        print(
            f"warning: in {turns:,} turns of random play the game never ended by itself (game.end() was never "
            f"called), so training will cut every episode at max_turns = {desc.max_turns:,} turns. If the player "
            "can lose or win, check that the game calls game.end() then; if it is meant to go on, set max_turns "
            "in its description to the episode length you want.",
            file=sys.stderr,
        )


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
        newest = (
            run_dir / checkpoint.RESUME_FILE
            if (run_dir / checkpoint.RESUME_FILE).is_file()
            else (saved[-1][1] if saved else None)
        )
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
        return (
            f"{run_dir} already has {episodes:,} episodes (trainer.episodes = {t.episodes:,}): nothing to do. Raise "
            "trainer.episodes (or `retro-gamer train RUN --episodes N`) to train further."
        )
    if reached == "total_env_steps":
        return (
            f"{run_dir} already has {env_steps:,} env steps (trainer.total_env_steps = {t.total_env_steps:,}): nothing "
            "to do. Raise trainer.total_env_steps (or `retro-gamer train RUN --steps N`) to train further."
        )
    return None
