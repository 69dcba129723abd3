"""get_action latency: how long one call takes inside a game's turn, on an idle or a busy CPU.

    python benchmarks/policy_latency.py [RUN_DIR ...] [--calls 5000] [--busy N]

A game author calls ``get_action`` every turn, so a slow call is a stalled game: the mean and the tail
(p99, max) matter as much as the median. Each call is timed mid-game on the policy's own game (the policy
encodes its own observation, so the game's view does not matter), with ``game.step()`` between calls.

Without RUN_DIR it measures an MLP and a ``cnn_small`` policy on snake, each from a tiny run trained
here (default network sizes, two games of training: the time depends on the network's shape, not on
what it learned). ``--busy N`` starts N processes that each spin on a core for the whole measurement,
as another training would; they are stopped when the benchmark ends, however it ends (each also exits
by itself once this process is gone). Target: mean ≤ 0.3 ms and p99 ≤ 1 ms for both with ``--busy 2``
on 2 cores.

Prints the figures and writes them to benchmarks/results/policy_latency.json (``_busyN`` added to the
name with ``--busy N``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from results import write_results
from retro.input import ProgrammaticInput

from retro_gamer import TrainedPolicy
from retro_gamer.games import load_factory

MODELS = ("mlp", "cnn_small")  # the policies measured when no run directory is given
TINY_TRAINING = [
    "trainer.episodes=2",
    "trainer.warmup_steps=64",
    "trainer.batch_size=16",
    "trainer.buffer_size=2000",
    "trainer.threads=1",
    "trainer.game_process=false",
    "trainer.learner_process=false",
    "tracking.enabled=false",
]
WARMUP_CALLS = 200  # untimed calls first: the first ones allocate and load code
SEED = 0
# A spinning process: busy on its core until stopped, or until the benchmark that started it is gone.
SPIN = "import os, sys\nparent = int(sys.argv[1])\nwhile os.getppid() == parent:\n    for _ in range(100_000): pass\n"


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """``n`` processes spinning for as long as the block runs, then stopped (SIGTERM included: it is turned into
    an exception here so the block's ``finally`` runs)."""
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    spinners = []
    try:
        for _ in range(n):
            spinners.append(subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())]))
        time.sleep(0.5 if n else 0)  # let them start spinning before anything is timed
        yield
    finally:
        for proc in spinners:
            proc.terminate()
        for proc in spinners:
            proc.wait()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def train_tiny_runs(root: Path) -> list[Path]:
    """One tiny snake run per model in :data:`MODELS`, under ``root``; their output is not printed."""
    from retro_gamer.config.compose import compose_app, run_config_from_hydra
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    runs = []
    for model in MODELS:
        run = root / model
        with contextlib.redirect_stdout(io.StringIO()):
            cfg = run_config_from_hydra(compose_app(["+game=snake", f"model={model}", *TINY_TRAINING]), "snake")
            train_run(run, prepare_run(cfg, run, "snake"), progress=False)
        runs.append(run)
    return runs


def time_calls(ai: TrainedPolicy, calls: int) -> list[float]:
    """Seconds per ``get_action`` call, ``calls`` of them after :data:`WARMUP_CALLS` untimed ones, through
    games played with the policy's own keys."""
    factory = load_factory(ai.config.game.factory, ai.run_dir)
    random.seed(SEED)
    timings: list[float] = []
    game = None
    for call in range(WARMUP_CALLS + calls):
        if game is None or not game.playing:
            game = factory()
            game.input_source = ProgrammaticInput()
            game.start()
        start = time.perf_counter()
        key = ai.get_action(game)
        if call >= WARMUP_CALLS:
            timings.append(time.perf_counter() - start)
        game.input_source.press(key)
        game.step()
    return timings


def summarise(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "p99_ms": ordered[int(0.99 * len(ordered))] * 1e3,
        "max_ms": ordered[-1] * 1e3,
    }


def describe(ai: TrainedPolicy) -> str:
    model = ai.config.model
    shape = (
        f"channels {list(model.channels)}, hidden {list(model.hidden)}"
        if model.kind.value == "cnn"
        else f"hidden {list(model.hidden)}"
    )
    return (
        f"{model.kind.value} ({shape}), {sum(p.numel() for p in ai.network.parameters()):,} parameters, "
        f"checkpoint {ai.checkpoint_path.name}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", help="runs to load (default: a tiny MLP and cnn_small snake run)")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--busy", type=int, default=0, help="spinning processes to run meanwhile")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dirs = [Path(r) for r in args.run_dirs] or train_tiny_runs(Path(tmp))
        policies = {
            Path(r).name if args.run_dirs else model: TrainedPolicy(r)
            for r, model in zip(run_dirs, args.run_dirs or MODELS)
        }
        with busy_cores(args.busy):
            for label, ai in policies.items():
                figure = summarise(time_calls(ai, args.calls))
                figures[label] = {**figure, "network": describe(ai)}
                print(
                    f"{label}: get_action over {args.calls} calls with {args.busy} busy processes: "
                    f"median {figure['median_ms']:.3f} ms, mean {figure['mean_ms']:.3f} ms, "
                    f"p99 {figure['p99_ms']:.3f} ms, max {figure['max_ms']:.3f} ms"
                )
                print(f"  network: {figures[label]['network']}")
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"get_action changed torch's thread count from {threads} to {torch.get_num_threads()}")
    settings = {
        "calls": args.calls,
        "warmup_calls": WARMUP_CALLS,
        "busy": args.busy,
        "torch_threads": threads,
        "runs": args.run_dirs or f"tiny snake runs: {', '.join(MODELS)} ({' '.join(TINY_TRAINING)})",
    }
    name = "policy_latency" + (f"_busy{args.busy}" if args.busy else "")
    print(f"results: {write_results(name, settings, figures, seeds=[SEED])}")


if __name__ == "__main__":
    main()
