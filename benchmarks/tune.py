"""``retro-gamer tune`` measured: trials per minute with one worker and with two, and a real search on snake whose
best configuration is trained again on fresh seeds beside the default configuration, on the same step budget.

    python benchmarks/tune.py speed                  # 6 small trials by one worker, then 6 by two workers at once
    python benchmarks/tune.py search --trials 20     # conf/tune/snake.yaml: two workers, 10 trials each
    python benchmarks/tune.py search --trials 20 --screenshot docs/_static/tune_mlflow.png
    python benchmarks/tune.py screenshot --folder FOLDER --screenshot docs/_static/tune_mlflow.png   # again

Everything runs in a new project folder (``--folder``, default a temporary one), as a user's would: the workers
are ``retro-gamer tune`` processes, the study is the default SQLite file, the runs go to the project's own
``mlruns/``. The re-evaluation trains the best trial's values and the space's defaults (the same overrides, no
searched key set) once per ``--check-seeds`` seed, seeds no trial used, and plays ``--games`` greedy games from an
evaluation seed no trial used. ``--screenshot`` opens the study's parent run in MLflow's UI in headless Chromium.
Figures go to benchmarks/results/tune_speed.json and tune_snake_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from results import REPO, write_results  # this folder's

BIN = Path(sys.executable).parent
SPEED_SETTINGS = ["trainer.total_env_steps=20000", "trainer.checkpoint_every=50", "trainer.threads=1"]


def workers(folder: Path, study: str, trials: list[int], *extra: str) -> float:
    """Start one ``retro-gamer tune`` worker per item of ``trials`` (its trial count) at once; their wall time."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    processes = [
        subprocess.Popen(
            [str(BIN / "retro-gamer"), "tune", "space.yaml", "--study", study, "--trials", str(n), *extra],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in trials
    ]
    for p in processes:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a worker failed:\n{out}")
        print(out.strip().splitlines()[-3] if out.strip() else "")
    return time.perf_counter() - started


def new_project(folder: Path, space: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[project]\nname = 'tuning'\n")
    (folder / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))


def speed(folder: Path, trials: int) -> dict[str, Any]:
    space = yaml.safe_load((REPO / "conf" / "tune" / "snake.yaml").read_text())
    space["overrides"] = [*space["overrides"], *SPEED_SETTINGS]
    space["objective"] = {**space["objective"], "episodes": 5, "report_every": 10000}
    space["pruner"] = {"kind": "none"}  # every trial trains its whole budget: trials of equal cost
    new_project(folder, space)
    one = workers(folder, "one-worker", [trials])
    two = workers(folder, "two-workers", [trials // 2, trials - trials // 2])
    figures = {
        "trials": trials,
        "one_worker": {"seconds": round(one, 1), "trials_per_min": round(60 * trials / one, 2)},
        "two_workers": {"seconds": round(two, 1), "trials_per_min": round(60 * trials / two, 2)},
    }
    print(json.dumps(figures, indent=2))
    print(write_results("tune_speed", {"trials": trials, "overrides": SPEED_SETTINGS}, figures))
    return figures


def train_and_judge(folder: Path, overrides: list[str], seed: int, games: int, eval_seed: int) -> dict[str, float]:
    """One training of snake with ``overrides`` and ``seed``, then greedy games: its apples and return."""
    from retro_gamer.config.compose import compose_run
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.launch import train_run
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.run.directory import prepare_run

    cfg, source, _ = compose_run("snake", [*overrides, f"trainer.seed={seed}", "tracking.enabled=false"])
    run_dir = folder / f"seed_{seed}"
    prepare_run(cfg, run_dir, source)
    summary = train_run(run_dir, progress=False)
    policy = TrainedPolicy(run_dir)
    result = evaluate(policy.config, policy.network, episodes=games, seed=eval_seed, base_dir=run_dir)
    return {
        "apples": result["final_state"]["score"] / 50,
        "mean_return": result["mean_return"],
        "env_steps_per_s": summary["env_steps_per_s"],
    }


def search(folder: Path, trials: int, check_seeds: list[int], games: int, screenshot: Path | None) -> None:
    import optuna

    space = yaml.safe_load((REPO / "conf" / "tune" / "snake.yaml").read_text())
    new_project(folder, space)
    seconds = workers(folder, "snake-search", [trials // 2, trials - trials // 2])
    study = optuna.load_study(study_name="snake-search", storage=f"sqlite:///{folder / 'tune' / 'optuna.db'}")
    states = [t.state.name for t in study.trials]
    best = study.best_trial
    print(f"{trials} trials in {seconds / 60:.1f} min; best trial {best.number}: {best.value:.1f} {best.params}")
    from retro_gamer.tune.space import override_value

    chosen = [f"{k}={override_value(v)}" for k, v in best.params.items()]
    rows = {}
    for name, extra in (("default", []), ("best", chosen)):
        runs = [
            train_and_judge(folder / "check" / name, [*space["overrides"], *extra], seed, games, 777)
            for seed in check_seeds
        ]
        rows[name] = {
            "apples_per_seed": [round(r["apples"], 2) for r in runs],
            "apples_mean": round(statistics.fmean(r["apples"] for r in runs), 2),
            "mean_return": round(statistics.fmean(r["mean_return"] for r in runs), 1),
            "env_steps_per_s": round(statistics.fmean(r["env_steps_per_s"] for r in runs)),
        }
        print(name, rows[name])
    figures = {
        "wall_minutes": round(seconds / 60, 1),
        "trials_per_min": round(60 * trials / seconds, 2),
        "states": {s: states.count(s) for s in sorted(set(states))},
        "best_trial": best.number,
        "best_value_score": best.value,
        "best_params": best.params,
        "recheck": rows,
        "best_beats_default": rows["best"]["apples_mean"] > rows["default"]["apples_mean"],
    }
    settings = {"space": "conf/tune/snake.yaml", "trials": trials, "workers": 2, "check_seeds": check_seeds,
                "games": games, "eval_seed": 777}  # fmt: skip
    print(write_results("tune_snake_search", settings, figures, seeds=check_seeds))
    if screenshot is not None:
        take_screenshot(folder, study.user_attrs["mlflow_parent_run_id"], screenshot)


def take_screenshot(folder: Path, parent_run: str, output: Path) -> None:
    """The study's parent run in MLflow's UI (best value, best parameters, the trials' counts), by headless Chromium."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import serve

    from retro_gamer.tracking.store import open_store, runs_url

    db = folder / "mlruns" / "mlflow.db"
    experiment = open_store(f"sqlite:///{db}").get_run(parent_run).info.experiment_id
    port = 5123
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}", "--port", str(port),
               "--host", "127.0.0.1", "--workers", "1"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with serve(command, url, cwd=folder, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, log=folder / "ui.log"):
        page = runs_url(f"sqlite:///{db}", experiment, parent_run).replace("http://127.0.0.1:5000", url)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1600,1200",
             "--virtual-time-budget=20000", f"--screenshot={output.resolve()}", page],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    print(f"screenshot: {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("speed", "search", "screenshot"), help="screenshot: again, of --folder")
    parser.add_argument("--trials", type=int, default=None, help="speed: 6; search: 20")
    parser.add_argument("--check-seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--games", type=int, default=50)
    parser.add_argument("--folder", type=Path, help="the project folder (default: a new temporary one)")
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="tune-benchmark-"))
    print(f"project folder: {folder}")
    if args.phase == "speed":
        speed(folder, args.trials or 6)
    elif args.phase == "screenshot":
        import optuna

        study = optuna.load_study(study_name="snake-search", storage=f"sqlite:///{folder / 'tune' / 'optuna.db'}")
        take_screenshot(folder, study.user_attrs["mlflow_parent_run_id"], args.screenshot)
    else:
        search(folder, args.trials or 20, args.check_seeds, args.games, args.screenshot)


if __name__ == "__main__":
    main()
