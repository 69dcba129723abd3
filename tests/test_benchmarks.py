"""The benchmark scripts keep working (tiny sizes; figures are printed, never asserted on speed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, TINY

BENCH = REPO / "benchmarks"


def bench(*args: str, cwd: Path) -> str:
    """Run a benchmark script; its results file goes to ``cwd/results``, leaving the recorded ones alone."""
    env = {**os.environ, "RETRO_GAMER_BENCHMARK_RESULTS": str(cwd / "results")}
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def recorded(cwd: Path, name: str) -> dict:
    """The results file a benchmark wrote: what it measured, and on what (machine, cores, commit, date)."""
    record = json.loads((cwd / "results" / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["date"] and record["machine"] and record["cores"]["usable"] >= 1
    assert record["commit"]["hash"] and record["seeds"] is not None and record["settings"]
    return record["figures"]


def test_env_speed_prints_both_ratios(tmp_path: Path):
    out = bench(str(BENCH / "env_speed.py"), "--steps", "2000", cwd=tmp_path)
    assert "ratio vs raw + HeadlessView" in out and "ratio vs raw, no view" in out
    assert recorded(tmp_path, "env_speed")["game_environment_steps_per_s"] > 0


def test_train_speed_prints_throughput_and_sizes(tmp_path: Path):
    out = bench(str(BENCH / "train_speed.py"), "--seconds", "3", *TINY, cwd=tmp_path)
    assert "env steps/s" in out and "policy checkpoint:" in out and "bytes per transition" in out
    assert recorded(tmp_path, "train_speed")["replay_bytes_per_transition"] > 0


def test_policy_latency_prints_and_records_the_figures_and_stops_its_busy_processes(
    tmp_path: Path, trained_snake: Path
):
    command = [sys.executable, str(BENCH / "policy_latency.py"), str(trained_snake), "--calls", "200", "--busy", "1"]
    env = {**os.environ, "RETRO_GAMER_BENCHMARK_RESULTS": str(tmp_path / "results")}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert re.search(
        r"snake: get_action over 200 calls with 1 busy processes: median [\d.]+ ms, mean [\d.]+ ms, "
        r"p99 [\d.]+ ms, max [\d.]+ ms",
        out,
    ), out
    record = json.loads((tmp_path / "results" / "policy_latency_busy1.json").read_text())
    assert record["settings"]["busy"] == 1 and record["cores"]["usable"] >= 1 and record["commit"]["hash"]
    assert set(record["figures"]["snake"]) >= {"median_ms", "mean_ms", "p99_ms", "max_ms"}
    spinners = [pid for pid in os.listdir("/proc") if pid.isdigit() and _spins_for(int(pid), proc.pid)]
    assert not spinners, "busy processes outlived the benchmark"


def _spins_for(pid: int, parent: int) -> bool:
    """Whether process ``pid`` is one of the spinning processes that policy_latency.py started as ``parent``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(b"getppid" in arg for arg in argv) and str(parent).encode() in argv


def test_snake_skill_prints_a_learning_curve(tmp_path: Path):
    out = bench(
        str(BENCH / "snake_skill.py"),
        "--minutes",
        "0.05",
        "--episodes",
        "2",
        "--points",
        "2",
        "--run-dir",
        "runs/bench",
        *TINY,
        cwd=tmp_path,
    )
    assert "minutes  episode   apples" in out and "policy checkpoint size" in out
    assert len(recorded(tmp_path, "snake_skill")["curve"]) >= 1


def test_tracking_overhead_prints_the_share_of_time(tmp_path: Path):
    overrides = [o for o in TINY if not o.startswith("tracking.")]
    out = bench(str(BENCH / "tracking_overhead.py"), "--seconds", "1", *overrides, cwd=tmp_path)
    assert "tracking off:" in out and "time in tracking while training" in out and "one-off:" in out
    assert recorded(tmp_path, "tracking_overhead")["on_env_steps_per_s"] > 0


def test_games_prints_what_was_chosen_and_a_row_per_time(tmp_path: Path):
    overrides = [o for o in TINY if not o.startswith("tracking.")]
    out = bench(
        str(BENCH / "games.py"),
        "--minutes",
        "0.01",
        "0.02",
        "--games",
        "chase_enemy",
        "--episodes",
        "2",
        *overrides,
        cwd=tmp_path,
    )
    assert "# chase_enemy: sees a 7x7 window around 'enemy'" in out
    assert out.count("chase_enemy   7x7 window, mlp[32]") == 2 and "catches a random player" in out
    # each row: greedy mean return vs random and the standard errors between them, then their mean game lengths
    assert (
        len(re.findall(r"-?\d+\.\d\d vs +-?\d+\.\d\d \([+-](\d+\.\d|inf) SE\) +[\d,]+ vs +[\d,]+  \(eval", out)) == 2
    ), out
    rows = recorded(tmp_path, "games")["rows"]
    assert [row["minutes"] for row in rows] == [0.01, 0.02] and {"greedy", "random", "standard_errors_apart"} <= set(
        rows[0]
    )


def test_vs_sb3_trains_each_for_the_same_time_and_scores_them_on_the_same_games(tmp_path: Path):
    out = bench(str(BENCH / "vs_sb3.py"), "--minutes", "0.02", "--episodes", "2", "--name", "vs_sb3_tiny", cwd=tmp_path)
    assert "snake, 0.02 min of training each, greedy over 2 games (seeds 0-1)" in out
    for algorithm in ("retro-gamer", "sb3 dqn", "sb3 ppo"):  # steps/s, return ± sd, length, apples
        assert re.search(rf"^{algorithm} +[\d,]+ +[\d,]+ +-?\d+\.\d\d ± \d+\.\d\d +\d+\.\d +\d+\.\d\d$", out, re.M), out
    rows = recorded(tmp_path, "vs_sb3_tiny")["rows"]
    assert [row["algorithm"] for row in rows] == ["retro-gamer", "sb3 dqn", "sb3 ppo"]
    assert all(row["env_steps"] > 0 and row["mean_apples"] is not None for row in rows)
