"""Stable-Baselines3 beside retro-gamer on the same game, for the same wall-clock budget.

    python benchmarks/vs_sb3.py                                  # snake, 2 minutes per algorithm
    python benchmarks/vs_sb3.py --game gems --minutes 2 --name vs_sb3_gems
    python benchmarks/vs_sb3.py --algorithms retro-gamer dqn --minutes 0.1 --episodes 3

One process trains, one after the other: retro-gamer's DQN (the game's own description, retro-gamer's defaults,
``trainer.time_limit``), then SB3's DQN and PPO on the Gymnasium adapter of the same game
(``retro_gamer/Snake-v0``, ``MultiInputPolicy``), each stopped by the wall clock after ``--minutes``. SB3 keeps
its defaults but for two: DQN's replay memory holds retro-gamer's ``trainer.buffer_size`` transitions (SB3's
million would take gigabytes of these observations) and its epsilon falls as retro-gamer's does (from 1 to
``trainer.epsilon_end`` over ``trainer.epsilon_decay_steps`` env steps), since SB3's own schedule is a fraction
of a step budget that a time budget does not have. Then every trained policy plays the same ``--episodes``
greedy games on the adapter, episode ``i`` reset with seed ``--seed + i``, so all of them meet the same games.

A row: the algorithm, its env steps and env steps/s over its training session, and the greedy mean return ± its
standard deviation and mean length (snake adds the apples eaten, its ``score``; its return is shaped). The figures
go to benchmarks/results/vs_sb3.json (``--name`` for another file). Tracking is off.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import write_results  # this folder's
from stable_baselines3.common.callbacks import BaseCallback

GAMES = {"snake": "retro_gamer/Snake-v0", "gems": "retro_gamer/Gems-v0"}  # the game's Hydra name: its Gymnasium id
ALGORITHMS = ("retro-gamer", "dqn", "ppo")


def play_greedy(env: Any, choose: Callable[[Any], int], seeds: list[int]) -> dict[str, Any]:
    """One greedy game per seed on the adapter ``env`` (a ``RetroGameEnv``): ``choose(observation)`` is the action."""
    returns, lengths, apples = [], [], []
    counts_apples = env.description.reward != "score"  # snake: a shaped reward; its score rises once per apple
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        total, eaten, done = 0.0, 0, False
        while not done:
            score = info["state"].get("score")
            obs, reward, terminated, truncated, info = env.step(choose(obs))
            total += float(reward)
            eaten += score is not None and info["state"].get("score", score) > score
            done = terminated or truncated
        returns.append(total)
        lengths.append(info["turns"])
        if counts_apples and "score" in info["state"]:
            apples.append(eaten)
    return {
        "mean_return": statistics.fmean(returns),
        "std_return": statistics.pstdev(returns),
        "mean_length": statistics.fmean(lengths),
        "mean_apples": statistics.fmean(apples) if apples else None,
    }


def train_retro_gamer(game: str, minutes: float, out: Path) -> tuple[Any, dict[str, Any]]:
    """retro-gamer's DQN for ``minutes``; its policy chooses from the game the adapter plays, as in a real game."""
    from retro_gamer.config.compose import compose_run
    from retro_gamer.launch import train_run
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.run.directory import prepare_run

    run_dir = out / game
    cfg, _, _ = compose_run(game, ["tracking.enabled=false", f"trainer.time_limit={minutes}"])
    cfg = prepare_run(cfg, run_dir, game)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the trainer's plain progress lines
        summary = train_run(run_dir, cfg, progress=False)
    seconds = time.perf_counter() - started
    policy = TrainedPolicy(run_dir)

    def choose(env: Any) -> Callable[[Any], int]:
        return lambda obs: env.keys.index(policy.get_action(env.game_env.game))

    return choose, {"env_steps": summary["env_steps"], "seconds": seconds}


class WallClock(BaseCallback):
    """Stops SB3's ``learn`` once ``seconds`` have passed: SB3 budgets only steps."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.deadline = 0.0

    def _on_training_start(self) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def _on_step(self) -> bool:
        return time.perf_counter() < self.deadline


def train_sb3(algorithm: str, game: str, minutes: float, seed: int) -> tuple[Any, dict[str, Any]]:
    """SB3's ``algorithm`` (dqn or ppo) on the adapter for ``minutes`` (see the module docstring for its settings)."""
    import gymnasium
    from stable_baselines3 import DQN, PPO

    from retro_gamer.config.compose import compose_run

    env = gymnasium.make(GAMES[game])
    budget = 10**9  # steps: never reached, the wall clock stops first
    if algorithm == "dqn":
        trainer = compose_run(game, [])[0].trainer  # retro-gamer's replay size and epsilon schedule
        model: Any = DQN(
            "MultiInputPolicy",
            env,
            buffer_size=trainer.buffer_size,
            exploration_fraction=trainer.epsilon_decay_steps / budget,
            exploration_final_eps=trainer.epsilon_end,
            seed=seed,
            device="cpu",
        )
    else:
        model = PPO("MultiInputPolicy", env, seed=seed, device="cpu")
    started = time.perf_counter()
    model.learn(total_timesteps=budget, callback=WallClock(60 * minutes))
    seconds = time.perf_counter() - started

    def choose(env: Any) -> Callable[[Any], int]:
        return lambda obs: int(model.predict(obs, deterministic=True)[0])

    return choose, {"env_steps": model.num_timesteps, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", choices=list(GAMES), default="snake")
    parser.add_argument("--minutes", type=float, default=2.0, help="wall-clock training budget per algorithm")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--episodes", type=int, default=20, help="greedy evaluation games, the same for all")
    parser.add_argument("--seed", type=int, default=0, help="SB3's seed; evaluation game i is reset with seed + i")
    parser.add_argument("--name", default="vs_sb3", help="the results file: benchmarks/results/NAME.json")
    args = parser.parse_args()
    import gymnasium

    import retro_gamer  # noqa: F401  (registers the Gymnasium ids)

    seeds = [args.seed + i for i in range(args.episodes)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trained = []
        for algorithm in args.algorithms:  # all training first, one after the other, then all evaluation
            if algorithm == "retro-gamer":
                trained.append((algorithm, *train_retro_gamer(args.game, args.minutes, Path(tmp))))
            else:
                trained.append((algorithm, *train_sb3(algorithm, args.game, args.minutes, args.seed)))
            print(f"# trained {algorithm}: {trained[-1][2]['env_steps']:,} env steps", flush=True)
        env = gymnasium.make(GAMES[args.game]).unwrapped
        for algorithm, choose, training in trained:
            started = time.perf_counter()
            greedy = play_greedy(env, choose(env), seeds)
            rows.append(
                {
                    "algorithm": algorithm if algorithm == "retro-gamer" else f"sb3 {algorithm}",
                    "env_steps": training["env_steps"],
                    "env_steps_per_s": round(training["env_steps"] / training["seconds"], 1),
                    **greedy,
                    "eval_seconds": round(time.perf_counter() - started, 1),
                }
            )
    apples = args.game == "snake"
    print(
        f"\n{args.game}, {args.minutes:g} min of training each, greedy over {args.episodes} games (seeds "
        f"{seeds[0]}-{seeds[-1]})\n{'algorithm':<12} {'env steps':>10} {'steps/s':>9} {'return (mean ± sd)':>22} "
        f"{'length':>8}{'  apples' if apples else ''}"
    )
    for row in rows:
        print(
            f"{row['algorithm']:<12} {row['env_steps']:>10,} {row['env_steps_per_s']:>9,.0f} "
            f"{row['mean_return']:>11.2f} ± {row['std_return']:<8.2f} {row['mean_length']:>8.1f}"
            + (f"  {row['mean_apples']:>6.2f}" if apples else "")
        )
    path = write_results(
        args.name,
        settings={
            "game": args.game,
            "minutes": args.minutes,
            "algorithms": args.algorithms,
            "episodes": args.episodes,
            "seed": args.seed,
        },
        figures={"rows": rows},
        seeds=seeds,
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
