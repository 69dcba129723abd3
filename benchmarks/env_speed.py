"""Encoding overhead: GameEnvironment.step() vs the raw game.step() on snake with random actions.

    python benchmarks/env_speed.py [--steps 100000]

"raw + HeadlessView" is retro's documented headless stepping (ProgrammaticInput + HeadlessView);
"raw, no view" is game.step() alone, the floor no wrapper can beat.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from results import write_results  # this folder's
from retro.input import ProgrammaticInput
from retro.views import HeadlessView

from retro_gamer.config.schema import config_dir
from retro_gamer.env.environment import GameEnvironment
from retro_gamer.games import load_factory, parse_description
from retro_gamer.run.directory import resolve_game


def raw_rate(factory, keys, steps: int, view: bool) -> float:
    random.seed(0)
    done, start = 0, time.perf_counter()
    while done < steps:
        game, inp = factory(), ProgrammaticInput()
        game.input_source, game.view = inp, HeadlessView() if view else None
        game.start()
        while game.playing and done < steps:
            inp.press(random.choice(keys))
            game.step()
            done += 1
    return steps / (time.perf_counter() - start)


def wrapper_rate(env: GameEnvironment, steps: int) -> float:
    random.seed(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated = env.step(random.randrange(env.n_actions))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    import yaml

    data = yaml.safe_load((config_dir() / "game" / "snake.yaml").read_text())
    desc = resolve_game(parse_description(data, "snake.yaml"), "snake.yaml", Path.cwd(), 100, 0)
    factory = load_factory(desc.factory)
    keys = list(desc.actions) + [None]
    with_view = raw_rate(factory, keys, args.steps, view=True)
    no_view = raw_rate(factory, keys, args.steps, view=False)
    wrapped = wrapper_rate(GameEnvironment(desc, factory), args.steps)
    print(f"raw game.step() + HeadlessView : {with_view:10,.0f} steps/s")
    print(f"raw game.step(), no view       : {no_view:10,.0f} steps/s")
    print(f"GameEnvironment.step() (crop 11x11 + apple_dx/dy): {wrapped:10,.0f} steps/s")
    print(f"ratio vs raw + HeadlessView: {wrapped / with_view:.2f}   ratio vs raw, no view: {wrapped / no_view:.2f}")
    path = write_results(
        "env_speed",
        settings={"steps": args.steps, "game": "snake"},
        seeds=[0],
        figures={
            "raw_with_view_steps_per_s": round(with_view),
            "raw_no_view_steps_per_s": round(no_view),
            "game_environment_steps_per_s": round(wrapped),
        },
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
