"""Every shipped game, untuned: what retro-gamer chooses, how fast it trains, and whether it learns.

    python benchmarks/games.py                       # all games, 1, 3 and 10 minutes each
    python benchmarks/games.py --minutes 0.5 1 --games nav beast --episodes 20
    python benchmarks/games.py --minutes 3 --games stars vault --episodes 100 --whole-board

For each game: ``retro-gamer create`` with its own description and no tuning (overrides only where a
side must be named: chase's player), trained with ``trainer.time_limit`` = the last ``--minutes``
value, stopped and evaluated at each of the others on the way (the run resumes exactly, so one run
gives every row). A row: the observation and network chosen, training env steps/s so far (and as a share
of the game's own ``game.step()`` speed, timed alone on one core with random keys and no view, before
training and again at each row, since a machine's speed drifts: the mean of those timings), and the
greedy mean return of the trained policy against a random policy's (``eval --epsilon 1``) over the
same ``--episodes`` games, then their mean game lengths (beast's return counts only kills and a death, so
its length shows how much longer the trained player survives), and how many standard errors of the difference
separate the two means. chase_enemy adds how often it catches a random player. ``stars`` and ``vault`` are small
boards of our own (benchmarks/small_boards/: a moving hazard, reward only on pickup, nothing that points at the
goal); ``--whole-board`` trains each game a second time with ``game.crop=null``, for comparison.
Tracking is off; run directories go under ``--out`` (default: a temporary folder). The figures are also
written to benchmarks/results/games.json (``--name`` for another file: games_shipped.json and
games_small_boards.json hold the shipped games' and the small boards' figures).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from results import seeds_in, write_results  # this folder's

CHASE = "retro_gamer.examples.chase"
SMALL = Path(__file__).resolve().parent / "small_boards"
RAW_TURNS = 3000  # turns of the bare game timed per game, for the "of raw" column
GAMES = {  # name: (the --game of retro-gamer create, overrides)
    "nav": ("retro.examples.nav", []),
    "beast": ("retro.examples.beast", []),
    "snake": ("snake", []),  # the hand-tuned conf/game/snake.yaml
    "snake_plain": ("snake_plain", []),  # snake with keys, reward and length only
    "chase_enemy": (f"{CHASE}:create_enemy_training_game", []),
    "chase_player": (
        f"{CHASE}:create_player_training_game",
        ["game.reward=player_reward", "game.crop={agent: player, radius: 3}"],
    ),
    "gems": ("gems", []),  # walls, gems, ghosts; nothing tuned
    "stars": (str(SMALL / "stars" / "stars.py"), []),  # 20x10: stars to collect, a bouncing comet
    "vault": (str(SMALL / "vault" / "vault.py"), []),  # 20x12 maze: coins appear at random, a wandering guard
}


def enemy_vs_random_player():
    """Chase with the enemy on the keyboard and a player that wanders at random (for the catch rate)."""
    from retro_gamer.examples.chase import EnemyAgent, RandomPlayer, _build

    return _build(RandomPlayer(), EnemyAgent())


def observation_text(cfg) -> str:
    g, m = cfg.game, cfg.model
    seen = f"{2 * g.crop.radius + 1}x{2 * g.crop.radius + 1} window" if g.crop else "{}x{} board".format(*g.board_size)
    net = f"{m.kind.value}{m.channels if m.kind.value == 'cnn' else ''}{m.hidden}"
    return f"{seen}, {net}"


def evaluate_run(run_dir: Path, episodes: int, epsilon: float, factory: str | None = None) -> dict:
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy

    policy = TrainedPolicy(run_dir)
    cfg = policy.config
    if factory is not None:
        cfg = replace(cfg, game=replace(cfg.game, factory=factory))
    return evaluate(cfg, policy.network, episodes=episodes, epsilon=epsilon, base_dir=policy.run_dir)


def bench_game(name: str, minutes: list[float], episodes: int, out: Path, extra: list[str]) -> list[dict]:
    from env_speed import raw_rate  # this folder's script

    from retro_gamer.config.compose import compose_run
    from retro_gamer.config.schema import write_config
    from retro_gamer.dqn.evaluate import standard_errors_apart
    from retro_gamer.games import game_factory
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    game, overrides = GAMES[name]
    whole = "game.crop=null" in extra
    run_dir = out / (f"{name}_whole_board" if whole else name)
    rows = []
    total = max(minutes)
    cfg, _, why = compose_run(game, [*overrides, "tracking.enabled=false", f"trainer.time_limit={total}", *extra])
    name = f"{name} (whole)" if whole else name
    cfg = prepare_run(cfg, run_dir, name)
    factory, keys = game_factory(cfg.game, run_dir), [*cfg.game.actions, None]
    raws = [raw_rate(factory, keys, RAW_TURNS, view=False)]
    print(f"# {name}: {why}; its game.step() alone: {raws[0]:,.0f} turns/s (one core, random keys)", flush=True)
    done, random_play = 0.0, None
    for mark in sorted(minutes):
        session = replace(cfg, trainer=replace(cfg.trainer, time_limit=mark - done))
        write_config(session, run_dir)
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's plain progress lines
            summary = train_run(run_dir, session, progress=False)
        done = mark
        start = time.perf_counter()
        trained = evaluate_run(run_dir, episodes, 0.0)
        if random_play is None:
            random_play = evaluate_run(run_dir, episodes, 1.0)
        extra_text = ""
        if (
            cfg.game.reward != "score" and "score" in trained["final_state"]
        ):  # snake: reward is shaped, score counts apples
            extra_text = f"  score {trained['final_state']['score']:.0f}"
        if name == "chase_enemy":
            caught = evaluate_run(run_dir, episodes, 0.0, f"{Path(__file__).resolve()}:enemy_vs_random_player")
            extra_text = f"  catches a random player in {caught['final_state'].get('caught', 0):.0%}"
        speed = summary["env_steps_per_s"]
        # a machine's speed can drift by tens of percent within minutes: the bare game is timed again at each mark,
        # and the training speed so far is compared with the mean of every timing so far
        raws.append(raw_rate(factory, keys, RAW_TURNS, view=False))
        share = speed / (sum(raws) / len(raws))
        apart = standard_errors_apart(
            trained, random_play
        )  # retro_gamer.dqn.evaluate's, as `retro-gamer eval` prints it
        print(
            f"{name:<13} {observation_text(cfg):<32} {mark:>5g} min {speed:>8,.0f}/s {share:>4.0%} of raw "
            f"{trained['mean_return']:>9.2f} vs {random_play['mean_return']:>8.2f} ({apart:+.1f} SE) "
            f"{trained['mean_length']:>7,.0f} vs {random_play['mean_length']:>6,.0f}  (eval {time.perf_counter() - start:.0f}s){extra_text}",
            flush=True,
        )
        rows.append(
            {
                "game": name,
                "observation": observation_text(cfg),
                "minutes": mark,
                "env_steps": summary["env_steps"],
                "env_steps_per_s": speed,
                "share_of_raw": round(share, 3),
                "greedy": {k: trained[k] for k in ("mean_return", "std_return", "mean_length")},
                "random": {k: random_play[k] for k in ("mean_return", "std_return", "mean_length")},
                "standard_errors_apart": round(apart, 2) if math.isfinite(apart) else None,
                "episodes": episodes,
                "extra": extra_text.strip(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[1, 3, 10], help="evaluate after this much training"
    )
    parser.add_argument("--games", nargs="+", choices=list(GAMES), default=list(GAMES))
    parser.add_argument("--episodes", type=int, default=30, help="evaluation games, trained and random")
    parser.add_argument("--out", type=Path, help="run directories (default: a temporary folder)")
    parser.add_argument("--whole-board", action="store_true", help="train each game again with game.crop=null")
    parser.add_argument("--name", default="games", help="the results file: benchmarks/results/NAME.json")
    parser.add_argument("overrides", nargs="*", help="more overrides for every game, e.g. trainer.seed=1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(
            f"{'game':<13} {'observation, network':<32} {'trained':>9} {'env steps':>10} {'':>11} "
            f"{'greedy mean return vs random':>30} {'and turns':>16}",
            flush=True,
        )
        rows = []
        for name in args.games:
            rows += bench_game(name, args.minutes, args.episodes, out, args.overrides)
            if args.whole_board:
                rows += bench_game(name, args.minutes, args.episodes, out, [*args.overrides, "game.crop=null"])
    path = write_results(
        args.name,
        settings={
            "games": args.games,
            "minutes": args.minutes,
            "episodes": args.episodes,
            "overrides": args.overrides,
            "whole_board": args.whole_board,
        },
        figures={"rows": rows},
        seeds=seeds_in(args.overrides),
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
