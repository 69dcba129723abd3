"""The performance page's tables, built from the benchmarks' results files (benchmarks/results/*.json).

    python docs/_tools/performance_tables.py     # rewrites docs/_generated/performance-tables.rst

docs/performance.rst includes the file this writes; tests/test_site.py builds the tables again from the results
files and compares them with it, so a new or re-run benchmark shows up on the page only through this script.
Each table names the command that produced its figures; a figure measured with several seeds is shown as the
mean ± the standard deviation over them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
OUTPUT = REPO / "docs" / "_generated" / "performance-tables.rst"


def load() -> dict[str, dict[str, Any]]:
    """Every results file, by name (without .json)."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS.glob("*.json"))}


def spread(values: list[float], digits: int = 0) -> str:
    """``mean ± standard deviation`` over seeds; the value alone for one seed."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{statistics.mean(values):,.{digits}f} ± {statistics.stdev(values):,.{digits}f}"


def table(title: str, header: list[str], rows: list[list[str]], commands: list[str]) -> Iterator[str]:
    yield from (title, "-" * len(title), "")
    yield "Made by" + (":" if len(commands) == 1 else " (one command a file):")
    yield ""
    yield ".. code-block:: text"
    yield ""
    yield from (f"   {command}" for command in commands)
    yield ""
    yield from list_table(header, rows)


def list_table(header: list[str], rows: list[list[str]]) -> Iterator[str]:
    yield from (".. list-table::", "   :header-rows: 1", "   :widths: auto", "")
    for row in [header, *rows]:
        yield f"   * - {row[0] or '—'}"
        yield from (f"     - {cell or '—'}" for cell in row[1:])
    yield ""


def games_command(name: str, record: dict[str, Any]) -> str:
    s = record["settings"]
    words = ["python benchmarks/games.py", "--minutes", *(f"{m:g}" for m in s["minutes"]), "--games", *s["games"]]
    words += ["--episodes", str(s["episodes"]), *(["--whole-board"] if s["whole_board"] else []), "--name", name]
    return " ".join(words + s["overrides"])


def games_rows(record: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in record["figures"]["rows"]:
        greedy, rand = row["greedy"], row["random"]
        rows.append(
            [
                row["game"],
                row["observation"],
                f"{row['minutes']:g}",
                f"{row['env_steps_per_s']:,.0f}",
                f"{row['share_of_raw']:.0%}",
                f"{greedy['mean_return']:,.1f} ± {greedy['std_return']:,.1f}",
                f"{rand['mean_return']:,.1f} ± {rand['std_return']:,.1f}",
                f"{row['standard_errors_apart']:.1f}",
                row["extra"],
            ]
        )
    return rows


GAMES_HEADER = [
    "game",
    "sees, network",
    "minutes",
    "env steps/s",
    "of game speed",
    "trained",
    "random",
    "SEs apart",
    "also",
]


def games_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    titles = {
        "games_shipped": "The shipped games, untuned",
        "games_small_boards": "Small boards of our own, windowed and whole",
    }
    for name, title in titles.items():
        record = results[name]
        yield from table(title, GAMES_HEADER, games_rows(record), [games_command(name, record)])


def latency_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    files = {"policy_latency": "an idle CPU", "policy_latency_busy2": "both cores busy with other work"}
    rows, commands = [], []
    for name, load_ in files.items():
        record = results[name]
        busy = record["settings"]["busy"]
        commands.append(
            f"python benchmarks/policy_latency.py --calls {record['settings']['calls']}"
            + (f" --busy {busy}" if busy else "")
        )
        for network, figures in record["figures"].items():
            rows.append(
                [
                    network,
                    load_,
                    *(f"{figures[key]:.3f}" for key in ("median_ms", "mean_ms", "p99_ms", "max_ms")),
                    figures["network"],
                ]
            )
    header = ["network", "CPU", "median ms", "mean ms", "p99 ms", "max ms", "policy"]
    yield from table("One get_action call", header, rows, commands)


def adversarial_command(name: str, record: dict[str, Any]) -> str:
    """The benchmark's command line: rounds and steps spelled out unless they are the shipped params.yaml's, and
    every ``--set`` the run was made with."""
    s, params = record["settings"], record["settings"]["params"]
    words = ["python benchmarks/adversarial.py", "--setting", s["setting"], "--seeds", *map(str, record["seeds"])]
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    rounds, steps = len(params["rounds"]), params["adversarial"]["player"]["steps"]
    if (rounds, steps) != (len(shipped["rounds"]), shipped["adversarial"]["player"]["steps"]):
        words += ["--rounds", str(rounds), "--steps", str(steps)]
    words += [f"--set {setting}" for setting in s.get("set", [])]
    if s["rise"] != (100.0 if s["setting"] == "demo" else 300.0):
        words += ["--rise", f"{s['rise']:g}"]
    return " ".join(words + (["--twice"] if s["twice"] else []) + ["--name", name])


def adversarial_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    rows, commands = [], []
    for name, record in results.items():
        if record.get("benchmark", "").startswith("adversarial") and "per_seed" in record.get("figures", {}):
            figures, params = record["figures"], record["settings"]["params"]
            seeds = list(figures["per_seed"].values())
            twice = figures.get("twice")
            rows.append(
                [
                    f"``{name}``",
                    record["settings"]["chase_rules"],
                    f"{len(params['rounds'])} x {params['adversarial']['player']['steps']:,}",
                    policy_of(params),
                    ", ".join(map(str, record["seeds"])),
                    spread([s["seconds"] / 60 for s in seeds], 1),
                    spread([s["gates"]["player"]["rating_rise"] for s in seeds]),
                    spread([s["gates"]["enemy"]["rating_rise"] for s in seeds]),
                    f"{sum(s['gates']['player']['gate'] and s['gates']['enemy']['gate'] for s in seeds)} of {len(seeds)}",
                    f"{figures['seeds_passing']} of {len(seeds)}",
                    "" if twice is None else ("yes" if all(twice.values()) else "no"),
                ]
            )
            commands.append(adversarial_command(name, record))
    header = [
        "results file",
        "chase rules",
        "rounds x steps",
        "a generation's policy",
        "seeds",
        "minutes",
        "player's rise",
        "enemy's rise",
        "both gates pass",
        "every check passes",
        "a fresh copy gives the same weights",
    ]
    yield from table("The adversarial pipeline, from a fresh copy", header, rows, commands)


def policy_of(params: dict[str, Any]) -> str:
    """What a generation's policy was in a run with these params.yaml values (runs before averaging have no key)."""
    average = params["adversarial"].get("average", 1)
    return "its last checkpoint" if average == 1 else f"the mean of its last {average} checkpoints"


def rescore_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    """benchmarks/average_rescore.py's records: a finished run's verdict, and the same run's with every generation
    averaged."""
    rows, commands = [], []
    for name, record in results.items():
        figures = record.get("figures", {})
        if "as_run" not in figures:
            continue
        for label, verdict in (("as run", figures["as_run"]), ("averaged", figures["averaged"])):
            gates = verdict["gates"]
            rows.append(
                [
                    f"``{name}``",
                    policy_of(record["settings"]["params"])
                    if label == "as run"
                    else f"the mean of its last {record['settings']['average']} checkpoints",
                    f"{gates['player']['rating_rise']:+.0f}",
                    f"{gates['enemy']['rating_rise']:+.0f}",
                    "yes" if gates["player"]["gate"] and gates["enemy"]["gate"] else "no",
                    "yes" if verdict["passed"] else "no",
                ]
            )
        source = Path(record["settings"]["source"]).name
        commands.append(
            f"python benchmarks/average_rescore.py OUT/{source} --average {record['settings']['average']} "
            f"--rise {record['settings']['rise']:g} --name {name}"
        )
    if not rows:
        return
    header = [
        "results file",
        "a generation's policy",
        "player's rise",
        "enemy's rise",
        "both gates pass",
        "every check passes",
    ]
    yield from table("A finished adversarial run judged again, its generations averaged", header, rows, commands)


def vs_sb3_command(name: str, record: dict[str, Any]) -> str:
    s = record["settings"]
    words = ["python benchmarks/vs_sb3.py", "--game", s["game"], "--minutes", f"{s['minutes']:g}"]
    words += ["--episodes", str(s["episodes"]), "--seed", str(s["seed"]), "--name", name]
    return " ".join(words)


def vs_sb3_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    """One table for every vs_sb3*.json: retro-gamer and SB3 trained for the same minutes on one game."""
    rows, commands = [], []
    for name, record in results.items():
        if record.get("benchmark", "").startswith("vs_sb3"):
            s = record["settings"]
            for row in record["figures"]["rows"]:
                apples = row.get("mean_apples")
                rows.append(
                    [
                        s["game"],
                        row["algorithm"],
                        f"{s['minutes']:g}",
                        f"{row['env_steps']:,}",
                        f"{row['env_steps_per_s']:,.0f}",
                        f"{row['mean_return']:,.1f} ± {row['std_return']:,.1f}",
                        f"{row['mean_length']:,.0f}",
                        "" if apples is None else f"{apples:.2f}",
                    ]
                )
            commands.append(vs_sb3_command(name, record))
    if rows:
        header = ["game", "trained by", "minutes", "env steps", "env steps/s", "greedy return", "turns", "apples"]
        yield from table("Stable-Baselines3 beside retro-gamer, same minutes", header, rows, commands)


def tune_tables(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    """``retro-gamer tune``: trials a minute by one and by two workers (tune_speed*.json), and a search on snake
    whose best configuration is trained again on fresh seeds beside the defaults (tune_*search*.json)."""
    rows, commands = [], []
    for record in results.values():
        if record.get("benchmark", "").startswith("tune_speed"):
            f = record["figures"]
            for workers, key in ((1, "one_worker"), (2, "two_workers")):
                rows.append(
                    [str(workers), str(f["trials"]), f"{f[key]['seconds']:,.0f}", f"{f[key]['trials_per_min']:.2f}"]
                )
            commands.append(f"python benchmarks/tune.py speed --trials {f['trials']}")
    if rows:
        yield from table("Tuning: trials a minute", ["workers", "trials", "seconds", "trials a minute"], rows, commands)
    rows, commands = [], []
    for record in results.values():
        if record.get("benchmark", "").startswith("tune_") and "recheck" in record.get("figures", {}):
            f, s = record["figures"], record["settings"]
            for config in ("default", "best"):
                r = f["recheck"][config]
                label = "defaults" if config == "default" else f"best of {s['trials']} trials (trial {f['best_trial']})"
                rows.append(
                    [
                        label,
                        ", ".join(f"{a:.2f}" for a in r["apples_per_seed"]),
                        f"{r['apples_mean']:.2f}",
                        f"{r['mean_return']:,.1f}",
                    ]
                )
            seeds = " ".join(map(str, s["check_seeds"]))
            commands.append(
                f"python benchmarks/tune.py search --trials {s['trials']} --check-seeds {seeds} --games {s['games']}"
            )
    if rows:
        header = ["configuration", "greedy apples, each fresh seed", "apples, mean", "greedy return, mean"]
        yield from table("A search on snake, checked on fresh seeds", header, rows, commands)


def index_table(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    rows = []
    for name, record in results.items():
        if "benchmark" not in record:  # a tournament's own record, kept beside the benchmark it re-judges
            rows.append(
                [
                    f"``{name}``",
                    "",
                    "",
                    "",
                    "",
                    "a tournament's record (retro_gamer.adversarial.tournament), not a benchmark's",
                ]
            )
            continue
        commit = record["commit"]
        dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
        cores = record["cores"]
        rows.append(
            [
                f"``{name}``",
                record["date"][:10],
                f"``{(commit.get('hash') or '?')[:10]}``{dirty}",
                ", ".join(map(str, record.get("seeds") or [])),
                f"{cores['usable']} of {cores['machine']}",
                f"{record['machine']['cpu']}, torch {record['machine']['torch']}",
            ]
        )
    header = ["file", "date", "commit", "seeds", "cores used", "machine"]
    yield from ("Every results file", "-" * 18, "")
    yield from list_table(header, rows)


def render() -> str:
    results = load()
    lines = [
        ".. Made by docs/_tools/performance_tables.py from benchmarks/results/*.json: run it again, do not edit.",
        "",
        *games_tables(results),
        *latency_tables(results),
        *adversarial_tables(results),
        *rescore_tables(results),
        *vs_sb3_tables(results),
        *tune_tables(results),
        *index_table(results),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"Wrote {OUTPUT}")


if __name__ == "__main__":
    main()
