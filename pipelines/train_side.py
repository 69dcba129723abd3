"""DVC stage ``player@rN`` / ``enemy@rN``: train one side of round N against the other side's latest generation.

    python pipelines/train_side.py player 2     # player_r2 against enemy_r1
    python pipelines/train_side.py enemy 2      # enemy_r2 against player_r2

The run directory is the stage's output, complete (config.toml, checkpoints, logs, metrics.json and,
when tracking, tracking.json with the MLflow run id): ``TrainedPolicy`` loads it as it is.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from adversarial import ROOT, cycle, generation, params, policy_source

from retro_gamer.compose import compose_app, run_config_from_hydra
from retro_gamer.errors import RetroGamerError
from retro_gamer.run import finish_message, prepare_run, train_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("side", choices=["player", "enemy"])
    parser.add_argument("round", type=int)
    args = parser.parse_args()
    settings = params()
    adversarial, rounds = settings["adversarial"], settings["rounds"]
    entry = rounds.get(f"r{args.round}")
    if entry is None:
        raise RetroGamerError(f"params.yaml has no rounds.r{args.round}: add r{args.round}: {{round: {args.round}, "
                              f"previous: {args.round - 1}}} under rounds.")
    opponent = generation("enemy", entry["previous"]) if args.side == "player" else generation("player", args.round)
    side = adversarial[args.side]
    game = f"chase_{args.side}"
    overrides = [f"+game={game}", f"trainer.episodes={side['episodes']}", f"trainer.time_limit={side.get('minutes') or 'null'}",
                 f"trainer.seed={adversarial['seed'] + args.round}", *side.get("overrides", [])]
    cfg = run_config_from_hydra(compose_app(overrides), game)
    parent = cycle()
    tags = {"round": str(args.round), "opponent": opponent.name, "cycle": ROOT.as_posix()}
    if parent:
        tags["mlflow.parentRunId"] = parent["run_id"]
    cfg = replace(
        cfg,
        game=replace(cfg.game, opponent=policy_source(opponent)),
        tracking=replace(cfg.tracking, enabled=bool(adversarial["tracking"]), uri=parent.get("tracking_uri"),
                         experiment="chase-adversarial", role=args.side, tags=tags),
    )
    run_dir = generation(args.side, args.round)
    cfg = prepare_run(cfg, run_dir, f"conf/game/{game}.yaml")
    print(f"{args.side}@r{args.round}: training against {opponent} ({'scripted' if cfg.game.opponent is None else 'trained'})")
    summary = train_run(run_dir, cfg, progress=False)
    print(finish_message(summary, run_dir, f"dvc repro {args.side}@r{args.round}"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
