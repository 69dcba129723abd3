"""DVC stage ``player@rN`` / ``enemy@rN``: train one side's generation of round N.

    python pipelines/train_side.py player 2     # player_r2: continues player_r1, against enemies r0..r1
    python pipelines/train_side.py enemy 2      # enemy_r2: continues enemy_r1, against players r0..r2

* **Budget**: every generation trains exactly ``adversarial.<side>.steps`` new env steps (counted on the side's
  cumulative counter), so a rating rise cannot be bought with extra steps and the weights do not depend on the
  machine's speed. ``adversarial.safety_minutes`` only stops a stage that hangs or crawls: a stage stopped by
  it fails, since stopping by the clock would make its weights depend on how busy the machine was.
* **Warm start**: generation N continues generation N-1 of its side (weights, optimizer, counters, replay
  memory) with a short exploration bump (``adversarial.warm_start``); round 1 starts from scratch.
* **Opponent pool**: each game draws one of the other side's generations by the shares of
  ``adversarial.pool`` (:mod:`retro_gamer.adversarial.pool`), drawn from the games' randomness (the stage's seed). The pool is written to
  ``opponents.json`` in the run directory and logged as the MLflow param ``opponent_pool``.
* **The generation's policy** is the mean of the weights of its last ``adversarial.average`` checkpoints,
  ``checkpoints/average.pt`` (:func:`retro_gamer.run.checkpoint.write_average`, which says why): what
  ``TrainedPolicy`` loads from the run directory, what later pools and the tournament play, and, when tracking,
  the model the child run's ``policy_model_uri`` names (so the one a ``champion`` alias gets). The next
  generation continues from the unaveraged weights in ``resume.pt``.

The run directory is the stage's output, complete (config.toml, checkpoints, logs, metrics.json and, when
tracking, tracking.json with the MLflow run id): ``TrainedPolicy`` loads it as it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from adversarial import EXPERIMENT, ROOT, generation, is_baseline, opponents, other, params, parent_run, policy_source

from retro_gamer.adversarial.pool import POOL_FILE, PoolShares, describe, pool_members, write_pool
from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.errors import RetroGamerError
from retro_gamer.launch import finish_message, saved_metrics, train_run
from retro_gamer.run.checkpoint import load, write_average
from retro_gamer.run.directory import prepare_run
from retro_gamer.run.warm_start import warm_start

UNLIMITED_EPISODES = 10**9  # the step budget ends a generation, never an episode count


def stage_config(settings: dict[str, Any], side: str, round_number: int, total_steps: int, run_dir: Path) -> Any:
    """The generation's RunConfig: Hydra's conf/ for ``chase_<side>``, the budget, seed and safety cap of
    params.yaml, the opponent pool as the game's opponent, and tracking under the experiment's parent run."""
    adversarial = settings["adversarial"]
    game = f"chase_{side}"
    overrides = [
        f"+game={game}",
        f"trainer.episodes={UNLIMITED_EPISODES}",
        f"trainer.total_env_steps={total_steps}",
        f"trainer.time_limit={adversarial['safety_minutes']}",
        f"trainer.seed={adversarial['seed'] + round_number}",
        *adversarial[side].get("overrides", []),
    ]
    cfg = run_config_from_hydra(compose_app(overrides), game)
    parent = parent_run(settings)
    latest = generation(other(side), opponents(settings, side, round_number)[-1])
    tags = {"round": str(round_number), "opponent": latest.name, "cycle": ROOT.as_posix()}
    if parent:
        tags["mlflow.parentRunId"] = parent["run_id"]
    return replace(
        cfg,
        game=replace(cfg.game, opponent=str(run_dir / POOL_FILE)),
        tracking=replace(
            cfg.tracking,
            enabled=bool(adversarial["tracking"]),
            uri=parent.get("tracking_uri"),
            experiment=EXPERIMENT,
            role=side,
            tags=tags,
        ),
    )


def log_generation(run_dir: Path, description: str, average: Path) -> None:
    """On the generation's MLflow run (its tracking.json names it): the pool as the param ``opponent_pool``, and the
    averaged policy as a model that the tag ``policy_model_uri`` now names, the checkpoints it averages as the
    param ``policy_average``."""
    import json

    from retro_gamer.tracking import store
    from retro_gamer.tracking.mlflow_model import log_policy_model
    from retro_gamer.tracking.mlflow_run import TRACKING_FILE

    tracked = json.loads((run_dir / TRACKING_FILE).read_text(encoding="utf-8"))
    client, run_id = store.open_store(tracked["tracking_uri"]), tracked["run_id"]
    client.log_param(run_id, "opponent_pool", description)
    client.log_param(run_id, "policy_average", " ".join(load(average)["averaged"]))
    client.set_tag(run_id, "policy_model_uri", log_policy_model(client, run_id, run_dir, average))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("side", choices=["player", "enemy"])
    parser.add_argument("round", type=int)
    args = parser.parse_args()
    settings = params()
    adversarial, side, number = settings["adversarial"], args.side, args.round
    entry = settings["rounds"].get(f"r{number}")
    if entry is None:
        raise RetroGamerError(
            f"params.yaml has no rounds.r{number}: add r{number}: {{round: {number}, "
            f"previous: {number - 1}}} under rounds."
        )
    previous = generation(side, entry["previous"])
    steps = int(adversarial[side]["steps"])
    start = 0 if is_baseline(previous) else int(saved_metrics(previous)["env_steps"])
    run_dir = generation(side, number)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)

    pool = pool_members(
        [
            (generation(other(side), n).name, policy_source(generation(other(side), n)))
            for n in opponents(settings, side, number)
        ],
        PoolShares(**adversarial["pool"]),
    )
    write_pool(run_dir / POOL_FILE, pool)
    described = describe(pool)
    cfg = prepare_run(
        stage_config(settings, side, number, start + steps, run_dir), run_dir, f"conf/game/chase_{side}.yaml"
    )
    average, keep = adversarial["average"], cfg.trainer.keep_checkpoints
    if not isinstance(average, int) or average < 1 or (keep is not None and average > keep):
        raise RetroGamerError(
            f"params.yaml: adversarial.average = {average!r} must be a whole number from 1 to the checkpoints a run "
            f"keeps (trainer.keep_checkpoints = {keep}): a generation's policy is the mean of that many checkpoints."
        )
    print(f"{side}@r{number}: {steps:,} env steps against {described}")
    if start:
        bump = adversarial["warm_start"]
        print(
            warm_start(
                previous, run_dir, cfg, epsilon=bump["epsilon"], over_steps=bump["steps"], keep_replay=bump["replay"]
            )
        )
    summary = train_run(run_dir, cfg, progress=False)
    print(finish_message(summary, run_dir, f"dvc repro {side}@r{number}"))
    if summary["stopped_by"] != "env_steps" or summary.get("status", "finished") != "finished":
        raise RetroGamerError(
            f"{side}@r{number} stopped by {summary['stopped_by']} after {summary['env_steps']:,} of its "
            f"{start + steps:,} env steps, so its weights would depend on when it stopped; the stage fails rather than "
            f"hand on a different generation. The safety cap is adversarial.safety_minutes = "
            f"{adversarial['safety_minutes']} minutes: raise it, or lower adversarial.{side}.steps, and run `dvc repro`."
        )
    policy = write_average(run_dir, average)
    print(f"{side}@r{number}'s policy: {policy} (the mean of {', '.join(load(policy)['averaged'])})")
    if cfg.tracking.enabled:
        log_generation(run_dir, described, policy)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code or 1)
