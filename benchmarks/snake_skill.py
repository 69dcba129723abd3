"""Skill per minute, the headline: train snake with the default config for N minutes, then
play 50 greedy episodes with checkpoints along the way and print apples (score/50) vs minutes.

    python benchmarks/snake_skill.py --minutes 10 [--run-dir runs/bench-snake] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from results import write_results  # this folder's

from retro_gamer.config.schema import read_config
from retro_gamer.dqn.evaluate import evaluate
from retro_gamer.dqn.trainer import build_q_network
from retro_gamer.env.environment import GameEnvironment
from retro_gamer.games import load_factory
from retro_gamer.run import checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--run-dir", default="runs/bench-snake")
    parser.add_argument("--episodes", type=int, default=50, help="greedy evaluation episodes per checkpoint")
    parser.add_argument("--points", type=int, default=6, help="checkpoints on the learning curve")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    if not args.skip_train:
        cmd = [
            sys.executable,
            "-m",
            "retro_gamer.train",
            "+game=snake",
            f"run_dir={run_dir}",
            f"trainer.time_limit={args.minutes}",
            "trainer.episodes=1000000",
            "trainer.checkpoint_every=250",
            *args.overrides,
        ]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    cfg = read_config(run_dir)
    env = GameEnvironment(cfg.game, load_factory(cfg.game.factory, run_dir), run_dir)
    q = build_q_network(cfg, env)
    found = checkpoint.list_checkpoints(run_dir)
    step = max(1, len(found) // args.points)
    chosen = found[step - 1 :: step]
    if found[-1] not in chosen:
        chosen.append(found[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(
        f"\ntrained {metrics['episodes']} episodes, {metrics['env_steps']:,} env steps, "
        f"{metrics['env_steps_per_s']:,.0f} env steps/s over {metrics['wall_seconds'] / 60:.1f} min"
    )
    print(f"{'minutes':>8} {'episode':>8} {'apples':>8} {'return':>8}")
    curve = []
    for episode, path in chosen:
        payload = checkpoint.load(path)
        q.load_state_dict(payload["weights"])
        result = evaluate(cfg, q, episodes=args.episodes, base_dir=run_dir)
        apples = result["final_state"]["score"] / 50
        print(
            f"{payload['wall_seconds'] / 60:8.1f} {episode:8d} {apples:8.2f} {result['mean_return']:8.1f}", flush=True
        )
        curve.append(
            {
                "minutes": round(payload["wall_seconds"] / 60, 2),
                "episode": episode,
                "env_steps": payload["env_steps"],
                "apples": apples,
                "mean_return": result["mean_return"],
            }
        )
    size = max(p.stat().st_size for _, p in found)
    print(f"\npolicy checkpoint size: {size / 1e6:.2f} MB")
    path = write_results(
        "snake_skill",
        settings={
            "minutes": args.minutes,
            "episodes": args.episodes,
            "points": args.points,
            "overrides": args.overrides,
        },
        seeds=[cfg.trainer.seed],
        figures={
            "env_steps": metrics["env_steps"],
            "env_steps_per_s": metrics["env_steps_per_s"],
            "curve": curve,
            "checkpoint_mb": round(size / 1e6, 3),
        },
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
