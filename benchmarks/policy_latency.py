"""get_action latency: how long one call takes inside a game's play_turn (target ≤ 0.3 ms for snake).

    python benchmarks/policy_latency.py RUN_DIR [--calls 5000]

Measured mid-game on snake with retro's TerminalView-free stepping; the policy renders its own
observation, so the game's view does not matter.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from retro.input import ProgrammaticInput

from retro_gamer import TrainedPolicy
from retro_gamer.games import load_factory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    ai = TrainedPolicy(args.run_dir)
    factory = load_factory(ai.config.game.factory, ai.run_dir)
    random.seed(0)
    timings = []
    game = None
    while len(timings) < args.calls:
        if game is None or not game.playing:
            game = factory()
            game.input_source = ProgrammaticInput()
            game.start()
        start = time.perf_counter()
        key = ai.get_action(game)
        timings.append(time.perf_counter() - start)
        game.input_source.press(key)
        game.step()
    timings.sort()
    print(f"get_action over {len(timings)} calls: median {statistics.median(timings) * 1e3:.3f} ms, "
          f"mean {statistics.fmean(timings) * 1e3:.3f} ms, p99 {timings[int(0.99 * len(timings))] * 1e3:.3f} ms")
    print(f"network: {ai.config.model.kind.value} {ai.config.model.hidden}, "
          f"{sum(p.numel() for p in ai.network.parameters()):,} parameters, checkpoint {ai.checkpoint_path.name}")


if __name__ == "__main__":
    main()
