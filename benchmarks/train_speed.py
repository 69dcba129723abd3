"""Training throughput, checkpoint size, replay memory and resume-state save time with the default snake config.

python benchmarks/train_speed.py [--seconds 60] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from results import write_results  # this folder's

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import RunLog
from retro_gamer.dqn.replay_memory import ReplayBuffer
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    composed = compose_app(
        ["+game=snake", "trainer.episodes=1000000", f"trainer.time_limit={args.seconds / 60}", *args.overrides]
    )
    cfg = run_config_from_hydra(composed, "snake")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        cfg = prepare_run(cfg, run_dir, "snake")
        trainer = DQNTrainer(cfg, run_dir, [RunLog(run_dir)])
        summary = trainer.train()
        size = max(p.stat().st_size for _, p in checkpoint.list_checkpoints(run_dir))
        print(json.dumps(summary, indent=2))
        print(f"env steps/s (whole run, warm-up included): {summary['env_steps_per_s']:,.0f}")
        lines = [line for line in (run_dir / "training.log").read_text().splitlines() if not line.startswith("#")]
        print("last window:", lines[-1] if lines else "-")
        print(
            f"policy checkpoint: {size / 1e6:.2f} MB; resume state: {(run_dir / 'resume.pt').stat().st_size / 1e6:.2f} MB"
        )
        resumed = DQNTrainer(cfg, run_dir)  # the run as a resume finds it (its replay memory in the learner)
        try:
            started = time.perf_counter()
            for _ in range(3):
                resumed._save_resume_state()
            save_ms = (time.perf_counter() - started) / 3 * 1000
        finally:
            resumed._close()
        print(
            f"resume state save: {save_ms:.0f} ms for {(run_dir / 'resume.pt').stat().st_size / 1e6:.1f} MB "
            f"(replay memory {'kept, ' + format(resumed.stored, ',') + ' transitions' if cfg.trainer.save_replay else 'not kept'})"
        )
        dims = resumed.games.dims
        per = ReplayBuffer(1, tuple(dims["board_shape"]), dims["extras_size"]).bytes_per_transition
        capacity = cfg.trainer.buffer_size
        print(f"replay memory: {per} bytes per transition ({capacity:,} transitions = {per * capacity / 1e6:.0f} MB)")
        resume_mb = (run_dir / "resume.pt").stat().st_size / 1e6
    path = write_results(
        "train_speed",
        settings={"seconds": args.seconds, "overrides": args.overrides},
        seeds=[cfg.trainer.seed],
        figures={
            "env_steps": summary["env_steps"],
            "env_steps_per_s": summary["env_steps_per_s"],
            "checkpoint_mb": round(size / 1e6, 3),
            "resume_mb": round(resume_mb, 3),
            "resume_save_ms": round(save_ms),
            "replay_bytes_per_transition": per,
        },
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
