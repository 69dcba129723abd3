"""The ``retro-gamer`` command."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from retro_gamer.errors import RetroGamerError


def _train(args: argparse.Namespace) -> int:
    from retro_gamer.config import read_config, write_config
    from retro_gamer.run import train_run

    run_dir = Path(args.run_dir)
    cfg = read_config(run_dir)
    if args.episodes is not None:
        cfg = replace(cfg, trainer=replace(cfg.trainer, episodes=args.episodes))
        write_config(cfg, run_dir)
    summary = train_run(run_dir, cfg)
    if summary["stopped_by"] == "interrupted":
        print(f"Stopped at episode {summary['episodes']}; checkpoint saved. Resume with: retro-gamer train {run_dir}")
    print(f"Trained {summary['episodes']} episodes ({summary['env_steps']:,} env steps). Results in {run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retro-gamer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train or resume the run in DIR",
                                epilog="example: retro-gamer train runs/snake --episodes 500")
    train.add_argument("run_dir", metavar="DIR")
    train.add_argument("--episodes", type=int, help="train until this many episodes in total")
    train.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
