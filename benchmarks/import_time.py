"""What registering the Gymnasium ids adds to ``import retro_gamer``.

    python benchmarks/import_time.py [--repeats 20]

Each repeat times ``import retro_gamer`` in two fresh interpreters, one after the other: as installed (the ids are
registered, which imports Gymnasium's registry) and with Gymnasium hidden (``sys.modules["gymnasium"] = None``:
what a core install without Gymnasium imports). The added time is the difference of the medians; target ≤ 0.2 s.
Python's own start is outside the timed part. Prints the figures and writes them to
benchmarks/results/import_time.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from results import write_results  # this folder's

# argv[1] "hide": Gymnasium cannot be imported, as in a core install without it
TIMED = """import sys, time
if sys.argv[1] == "hide":
    sys.modules["gymnasium"] = None
start = time.perf_counter()
import retro_gamer
elapsed = time.perf_counter() - start
gymnasium = sys.modules.get("gymnasium")
print(elapsed, gymnasium is not None and "retro_gamer/Snake-v0" in gymnasium.registry)
"""


def time_import(hide_gymnasium: bool) -> tuple[float, bool]:
    """Seconds ``import retro_gamer`` took in a fresh interpreter, and whether the ids were registered."""
    mode = "hide" if hide_gymnasium else "show"
    out = subprocess.run([sys.executable, "-c", TIMED, mode], capture_output=True, text=True, check=True).stdout
    seconds, registered = out.split()
    return float(seconds), registered == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    registered, hidden = [], []
    for _ in range(args.repeats):  # interleaved, so a busy moment weighs on both alike
        seconds, ids = time_import(hide_gymnasium=False)
        if not ids:
            raise SystemExit("import retro_gamer registered no Gymnasium ids: is Gymnasium installed?")
        registered.append(seconds)
        hidden.append(time_import(hide_gymnasium=True)[0])
    with_ids, without = statistics.median(registered), statistics.median(hidden)
    print(f"import retro_gamer, registering the Gymnasium ids: median {with_ids:.3f} s over {args.repeats}")
    print(f"import retro_gamer, Gymnasium hidden:              median {without:.3f} s")
    print(f"added by registration: {with_ids - without:.3f} s (target ≤ 0.2 s)")
    path = write_results(
        "import_time",
        settings={"repeats": args.repeats},
        figures={
            "import_with_registration_median_s": round(with_ids, 4),
            "import_without_gymnasium_median_s": round(without, 4),
            "added_by_registration_s": round(with_ids - without, 4),
        },
        seeds=[],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
