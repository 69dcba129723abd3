"""What MLflow tracking costs a training run: the same snake training with tracking off, then on.

    python benchmarks/tracking_overhead.py [--seconds 120] [overrides ...]

Prints env steps/s of both runs and the wall time spent inside the tracking callback while training
(metrics, checkpoint artifacts, episode replays) as a share of the tracked run's wall time, and the
one-off costs before and after. The share is the steadier figure: two runs' throughputs differ by
more than tracking costs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from results import seeds_in, write_results  # this folder's

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import RunLog
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.run.directory import prepare_run
from retro_gamer.tracking.mlflow_run import MlflowTracking


def train(seconds: float, overrides: list[str], tracked: bool, folder: Path) -> tuple[dict, MlflowTracking | None]:
    composed = compose_app(
        [
            "+game=snake",
            "trainer.episodes=1000000",
            f"trainer.time_limit={seconds / 60}",
            f"tracking.enabled={str(tracked).lower()}",
            f"tracking.uri=sqlite:///{folder}/mlruns/mlflow.db",
            *overrides,
        ]
    )
    run_dir = folder / ("tracked" if tracked else "untracked")
    cfg = prepare_run(run_config_from_hydra(composed, "snake"), run_dir, "snake")
    tracking = MlflowTracking(cfg, run_dir) if tracked else None
    trainer = DQNTrainer(cfg, run_dir, [RunLog(run_dir), *([tracking] if tracking else [])])
    return trainer.train(), tracking


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off, _ = train(args.seconds, args.overrides, False, Path(tmp))
        on, tracking = train(args.seconds, args.overrides, True, Path(tmp))
        replays = sorted((Path(tmp) / "mlruns" / "artifacts").rglob("replays/*.html"))
        print(f"tracking off: {off['env_steps_per_s']:,.0f} env steps/s, {off['episodes']:,} episodes")
        print(
            f"tracking on:  {on['env_steps_per_s']:,.0f} env steps/s, {on['episodes']:,} episodes, "
            f"{len(replays)} replays (largest {max((p.stat().st_size for p in replays), default=0) / 1e3:.0f} kB)"
        )
        during = tracking.seconds.get("on_episode_end", 0.0) + tracking.seconds.get("on_checkpoint", 0.0)
        print(
            f"time in tracking while training (episodes, checkpoints, replays): {during:.2f} s of "
            f"{on['wall_seconds']:.1f} s = {100 * during / on['wall_seconds']:.1f} %"
        )
        print(f"metric sending in the background thread: {tracking.sender_cpu_seconds:.2f} s of CPU time")
        print(
            f"one-off: opening the store {tracking.seconds.get('on_train_start', 0):.2f} s; after training "
            f"(final replay, model, files) {tracking.seconds.get('on_train_end', 0):.2f} s"
        )
        print(f"throughput cost: {100 * (1 - on['env_steps_per_s'] / off['env_steps_per_s']):.1f} % fewer env steps/s")
    path = write_results(
        "tracking_overhead",
        settings={"seconds": args.seconds, "overrides": args.overrides},
        seeds=seeds_in(args.overrides),
        figures={
            "off_env_steps_per_s": off["env_steps_per_s"],
            "on_env_steps_per_s": on["env_steps_per_s"],
            "seconds_in_tracking_while_training": round(during, 3),
            "sender_cpu_seconds": round(tracking.sender_cpu_seconds, 3),
            "replays": len(replays),
        },
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
